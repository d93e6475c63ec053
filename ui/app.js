// memprof's page: asks the collector for a profile as JSON (api/profile,
// built by collector/ui_prof.c) and shows it as a flame graph
// (d3-flame-graph) and as go tool pprof's -top table. The state is in the
// URL's query (pid, kind, type, seconds, base), so a view can be shared
// or reloaded.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { mode: "live", procs: [], timer: null, chart: null, loading: false, zoom: "" };
const query = new URLSearchParams(location.search);

const TYPES = {
	heap: ["inuse_space", "inuse_objects", "alloc_space", "alloc_objects"],
	peak: ["inuse_space", "inuse_objects", "alloc_space", "alloc_objects"],
	cpu: ["cpu", "samples"],
};
const TYPE_LABELS = {
	inuse_space: "in use, bytes", inuse_objects: "in use, objects",
	alloc_space: "allocated, bytes", alloc_objects: "allocated, objects",
	cpu: "CPU time", samples: "CPU samples",
};

function status(text, error) {
	const s = $("status");
	s.textContent = text;
	s.className = error ? "error" : "";
}

async function getJSON(url) {
	const r = await fetch(url, { cache: "no-store" });
	const body = await r.text();
	if (!r.ok)
		throw new Error(body.trim() || r.status + " " + r.statusText);
	return JSON.parse(body);
}

function pidParam() {
	return state.mode === "live" && $("proc").value ? "pid=" + encodeURIComponent($("proc").value) : "";
}

function setOptions(select, values, labels, keep) {
	const old = keep !== undefined ? keep : select.value;
	select.textContent = "";
	for (const v of values) {
		const o = document.createElement("option");
		o.value = v;
		o.textContent = labels && labels[v] ? labels[v] : v;
		select.appendChild(o);
	}
	if (values.includes(old))
		select.value = old;
}

// The URL keeps what is shown.
function saveState() {
	const q = new URLSearchParams();
	if (state.mode === "live" && $("proc").value)
		q.set("pid", $("proc").value);
	if (state.mode === "live")
		q.set("kind", $("kind").value);
	if ($("type").value)
		q.set("type", $("type").value);
	if ($("kind").value === "cpu")
		q.set("seconds", $("seconds").value);
	if ($("base").value && $("base").value !== "now")
		q.set("base", $("base").value);
	if ($("search").value)
		q.set("search", $("search").value);
	if (state.zoom)
		q.set("zoom", state.zoom);
	history.replaceState(null, "", "?" + q.toString());
}

async function loadProcs() {
	const r = await getJSON("api/procs");
	state.mode = r.mode;
	if (r.mode === "view") {
		$("proc-box").hidden = true;
		$("kind-box").hidden = true;
		$("base-box").hidden = true;
		$("files-box").hidden = false;
		$("files").textContent = r.files.join(", ") + (r.base ? "  less base " + r.base : "");
		return;
	}
	state.procs = r.procs;
	const want = query.get("pid") || $("proc").value;
	$("proc").textContent = "";
	for (const p of r.procs) {
		const o = document.createElement("option");
		o.value = String(p.pid);
		o.textContent = p.pid + " " + p.name + (p.cmdline ? ": " + p.cmdline.slice(0, 80) : "");
		$("proc").appendChild(o);
	}
	if (want && r.procs.some((p) => String(p.pid) === want))
		$("proc").value = want;
	if (!r.procs.length)
		status("No process is being profiled right now: start one with memprof run --http, or point MEMPROF_SOCKET at this collector.", true);
	await procChanged(false);
}

function currentProc() {
	return state.procs.find((p) => String(p.pid) === $("proc").value);
}

function procChanged(user) {
	const p = currentProc();
	const kinds = ["heap"];
	if (!p || p.cpu)
		kinds.push("cpu");
	if (p && p.peak)
		kinds.push("peak");
	setOptions($("kind"), kinds, { heap: "heap", cpu: "CPU", peak: "peak heap" },
		user ? undefined : query.get("kind") || $("kind").value);
	kindChanged(false);
	return loadBaselines(user ? "" : query.get("base") || "");
}

function kindChanged(user) {
	const kind = $("kind").value || "heap";
	setOptions($("type"), TYPES[kind], TYPE_LABELS, user ? undefined : query.get("type") || undefined);
	$("seconds-box").hidden = kind !== "cpu";
	$("base-box").hidden = kind !== "heap";
	if (query.get("seconds") && !user)
		$("seconds").value = query.get("seconds");
}

async function loadBaselines(select) {
	if (state.mode !== "live" || !$("proc").value)
		return;
	let r;
	try {
		r = await getJSON("api/baselines?" + pidParam());
	} catch (e) {
		return;
	}
	const base = $("base");
	const keep = select !== undefined && select !== "" ? select : base.value;
	while (base.options.length > 2)
		base.remove(2);
	for (const b of r.baselines) {
		const o = document.createElement("option");
		o.value = b.id;
		o.textContent = b.label;
		base.appendChild(o);
	}
	base.value = [...base.options].some((o) => o.value === keep) ? keep : "";
}

async function startBaseline() {
	try {
		const b = await getJSON("api/baseline?" + pidParam());
		await loadBaselines(b.id);
		status("Baseline taken (" + b.label + "): the flame graph shows what grew since.");
	} catch (e) {
		status("Could not take a baseline: " + e.message, true);
		$("base").value = "";
	}
}

function profileURL() {
	const q = new URLSearchParams();
	if (state.mode === "live") {
		if ($("proc").value)
			q.set("pid", $("proc").value);
		q.set("kind", $("kind").value || "heap");
		if ($("kind").value === "cpu")
			q.set("seconds", $("seconds").value);
		if ($("kind").value === "heap" && $("base").value && $("base").value !== "now")
			q.set("base", $("base").value);
	}
	const type = $("type").value || query.get("type");
	if (type)
		q.set("type", type);
	return "api/profile?" + q.toString();
}

async function load() {
	if (state.loading)
		return;
	state.loading = true;
	saveState();
	try {
		const r = await getJSON(profileURL());
		render(r);
	} catch (e) {
		status(e.message, true);
	} finally {
		state.loading = false;
	}
}

function render(r) {
	const p = r.profile;
	const t = p.types[p.index] || { type: "", unit: "" };
	if (state.mode === "view" || !$("type").value) {
		setOptions($("type"), p.types.map((x) => x.type), TYPE_LABELS, t.type);
	}
	const when = p.time_ns ? new Date(p.time_ns / 1e6).toLocaleTimeString() : "";
	let text = p.diff
		? "Growth since the baseline: " + formatValue(p.flame.value, t.unit) + " more " + t.type +
			" (" + p.total_s + " at the baseline)"
		: t.type + ", total " + p.total_s;
	if (when)
		text += " (profile of " + when + ")";
	if (r.note)
		text += ". " + r.note;
	status(text);
	$("comments").textContent = p.comments.join("\n");
	$("flame-title").textContent = p.diff ? "Flame graph of what grew" : "Flame graph";
	renderFlame(p, t);
	renderTop(p);
}

// Figures in the flame graph's labels, in the profile's unit.
function formatValue(v, unit) {
	const units = unit === "bytes" ? [["B", 1], ["kB", 1024], ["MB", 1 << 20], ["GB", 1 << 30]]
		: unit === "nanoseconds" ? [["ns", 1], ["us", 1e3], ["ms", 1e6], ["s", 1e9]] : null;
	if (!units)
		return String(v);
	let u = units[0];
	for (const x of units)
		if (Math.abs(v) >= x[1])
			u = x;
	return (v / u[1]).toFixed(2).replace(/\.00$/, "") + u[0];
}

function renderFlame(p, t) {
	const el = $("flame");
	const width = Math.max(400, el.clientWidth || document.body.clientWidth - 40);
	el.textContent = "";
	if (!p.flame.value) {
		el.textContent = p.diff ? "Nothing grew since the baseline." : "No samples (yet).";
		state.chart = null;
		return;
	}
	const total = p.flame.value;
	// d3-flame-graph 5's UMD build exports {default, tooltip, colorMapper}.
	const make = typeof flamegraph === "function" ? flamegraph : flamegraph.default;
	const chart = make()
		.width(width)
		.cellHeight(18)
		.transitionDuration(0)
		.minFrameSize(0)
		.sort(true)
		.title("")
		.setDetailsElement($("details"))
		.label((d) => d.data.name + ": " + formatValue(d.value, t.unit) + " (" +
			(100 * d.value / total).toFixed(2) + "%)");
	chart.setSearchHandler((results, sum, all) => {
		$("details").textContent = $("search").value
			? "search: " + formatValue(sum, t.unit) + " of " + formatValue(all, t.unit) +
				" (" + (all ? (100 * sum / all).toFixed(2) : "0") + "%)"
			: "";
	});
	if (p.diff)
		chart.setColorHue("green");
	// A click zooms into a frame (the library's); the URL remembers which,
	// so that a refresh or a shared link shows the same frame.
	chart.onClick((d) => {
		state.zoom = d.parent ? d.data.name : "";
		saveState();
	});
	d3.select(el).datum(p.flame).call(chart);
	state.chart = chart;
	if (state.zoom) {
		const node = d3.select(el).selectAll("g").data().find((d) => d.data.name === state.zoom);
		if (node)
			chart.zoomTo(node);
	}
	const term = $("search").value;
	if (term)
		chart.search(term);
}

function renderTop(p) {
	const body = $("top").tBodies[0];
	body.textContent = "";
	for (const row of p.top) {
		const tr = document.createElement("tr");
		for (const v of [row.flat_s, row.flat_pct, row.sum_pct, row.cum_s, row.cum_pct]) {
			const td = document.createElement("td");
			td.textContent = v;
			tr.appendChild(td);
		}
		const td = document.createElement("td");
		td.className = "name";
		td.textContent = row.name + row.inline;
		tr.appendChild(td);
		tr.title = "search the flame graph for " + row.name;
		tr.addEventListener("click", () => {
			$("search").value = "^" + row.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$";
			if (state.chart)
				state.chart.search($("search").value);
		});
		body.appendChild(tr);
	}
	$("top-note").textContent = p.dropped ? "(" + p.dropped + " functions under 0.5% of the total left out, as pprof -top does)" : "";
}

function setAuto() {
	if (state.timer)
		clearInterval(state.timer);
	state.timer = null;
	if ($("auto").checked) {
		const s = Math.max(1, Number($("every").value) || 5);
		state.timer = setInterval(load, s * 1000);
	}
}

async function init() {
	$("proc").addEventListener("change", async () => { await procChanged(true); load(); });
	$("kind").addEventListener("change", () => { kindChanged(true); load(); });
	$("type").addEventListener("change", load);
	$("seconds").addEventListener("change", load);
	$("base").addEventListener("change", async () => {
		if ($("base").value === "now")
			await startBaseline();
		load();
	});
	$("refresh").addEventListener("click", async () => { await loadBaselines(); load(); });
	$("auto").addEventListener("change", setAuto);
	$("every").addEventListener("change", setAuto);
	$("search").addEventListener("input", () => {
		if (state.chart)
			state.chart.search($("search").value);
	});
	$("reset").addEventListener("click", () => {
		if (state.chart)
			state.chart.resetZoom();
	});
	state.zoom = query.get("zoom") || "";
	if (query.get("search"))
		$("search").value = query.get("search");
	if (query.get("auto")) {
		$("auto").checked = true;
		$("every").value = query.get("auto");
	}
	try {
		await loadProcs();
	} catch (e) {
		status("Cannot reach the collector: " + e.message, true);
		return;
	}
	await load();
	setAuto();
}

init();
