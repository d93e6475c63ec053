/*
 * The page's files (ui/, and the vendored library in ui/vendor/) inside
 * the collector, so that it serves them with no network and nothing to
 * install beside it. Paths are from the top of the tree, where make runs.
 * ui.c names each as ui_asset_NAME .. ui_asset_NAME_end.
 */
	.macro asset name, file
	.section .rodata.ui_asset_\name, "a", @progbits
	.global ui_asset_\name
	.global ui_asset_\name\()_end
ui_asset_\name:
	.incbin "\file"
ui_asset_\name\()_end:
	.byte 0
	.endm

	asset index_html, "ui/index.html"
	asset app_js, "ui/app.js"
	asset app_css, "ui/app.css"
	asset d3_js, "ui/vendor/d3.min.js"
	asset flamegraph_js, "ui/vendor/d3-flamegraph.min.js"
	asset flamegraph_css, "ui/vendor/d3-flamegraph.css"
	asset license_d3, "ui/vendor/LICENSE.d3"
	asset license_flamegraph, "ui/vendor/LICENSE.d3-flame-graph"
	asset versions, "ui/vendor/VERSIONS"

	.section .note.GNU-stack, "", @progbits
