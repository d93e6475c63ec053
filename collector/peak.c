/*
 * The peak heap profile's bookkeeping outside the hot path (the hooks are
 * in peak.h): a fork child's start.
 */
#include "peak.h"

void peak_inherit(struct proc *child)
{
	/* The parent's peak is not the child's: what it inherits is where
	 * its own starts. A new generation makes every bucket's live counts
	 * its counts at that peak. */
	child->peak_est = child->inuse_est;
	child->peak_gen++;
}
