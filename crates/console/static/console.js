// Sluice console: the live parts of the pages. Everything else works without this file.
// Uses only server-rendered, escaped HTML fragments and JSON from this origin.
(function () {
  "use strict";

  // Local time beside each UTC timestamp.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      if (t.title) return;
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.title = "Local time: " + d.toLocaleString();
    });
  }

  // Rows arriving as an HTML fragment, inserted at the top (tail) or bottom (search),
  // keeping at most `max` rows.
  function insertRows(tbody, html, atTop, max) {
    var tmp = document.createElement("tbody");
    tmp.innerHTML = html;
    var rows = Array.prototype.slice.call(tmp.children);
    if (atTop) {
      for (var i = rows.length - 1; i >= 0; i--) tbody.insertBefore(rows[i], tbody.firstChild);
    } else {
      rows.forEach(function (r) { tbody.appendChild(r); });
    }
    while (tbody.children.length > max) tbody.removeChild(atTop ? tbody.lastChild : tbody.firstChild);
    if (window.htmx) window.htmx.process(tbody);
    localTimes(tbody);
  }

  // The live tail: Start/Pause; pausing keeps the rows and resumes where it stopped.
  function tail(section) {
    var start = section.querySelector("[data-action=tail-start]");
    var pause = section.querySelector("[data-action=tail-pause]");
    var status = section.querySelector(".tail-status");
    var tbody = section.querySelector(".tail-rows");
    var source = null, last = "", count = 0;
    function open() {
      var url = section.getAttribute("data-tail") + (last ? "&from=" + encodeURIComponent(last) : "");
      source = new EventSource(url);
      source.addEventListener("rows", function (e) {
        last = e.lastEventId || last;
        insertRows(tbody, e.data, true, 500);
        count = tbody.querySelectorAll("tr:not(.skipped)").length;
        status.textContent = "Live: " + count + " records shown";
      });
      source.onerror = function () { status.textContent = "Reconnecting…"; };
      source.onopen = function () { status.textContent = "Live: waiting for records"; };
      start.disabled = true; pause.disabled = false;
    }
    function stop() {
      if (source) source.close();
      source = null;
      start.disabled = false; pause.disabled = true;
      start.textContent = "Resume";
      status.textContent = "Paused: " + count + " records kept";
    }
    start.addEventListener("click", open);
    pause.addEventListener("click", stop);
    document.addEventListener("visibilitychange", function () { if (document.hidden && source) stop(); });
  }

  // A filtered search streams its progress; Cancel closes the stream, which stops it.
  function search(form) {
    var cancel = form.querySelector("[data-action=search-cancel]");
    var progress = form.querySelector(".search-progress");
    var source = null;
    form.addEventListener("submit", function (e) {
      var q = form.querySelector("[name=q]");
      if (!q || !q.value) return; // no filter: the plain GET is fast
      e.preventDefault();
      var params = new URLSearchParams(new FormData(form)).toString();
      var table = document.querySelector("table.records tbody.result-rows");
      var count = document.querySelector("p.count");
      if (!table) return form.submit();
      table.innerHTML = "";
      if (count) count.textContent = "";
      if (source) source.close();
      source = new EventSource(form.getAttribute("data-search") + "?" + params);
      cancel.hidden = false;
      var report = function (e, done) {
        var p = JSON.parse(e.data);
        progress.textContent = (done ? "Done: " : "Searching: ") + p.matches + " matches in " +
          p.records + " records (" + Math.round(p.bytes / 1048576) + " MiB)" + (p.done ? " — " + p.done : "");
      };
      source.addEventListener("rows", function (e) { insertRows(table, e.data, false, 10000); });
      source.addEventListener("progress", function (e) { report(e, false); });
      source.addEventListener("done", function (e) { report(e, true); source.close(); cancel.hidden = true; });
      source.addEventListener("failed", function (e) { progress.textContent = JSON.parse(e.data).error; source.close(); cancel.hidden = true; });
      source.onerror = function () { source.close(); cancel.hidden = true; };
    });
    cancel.addEventListener("click", function () {
      if (source) source.close();
      cancel.hidden = true;
      progress.textContent = "Cancelled: " + progress.textContent.replace(/^Searching: /, "");
    });
  }

  // Charts: one EventSource per source URL feeds every chart drawn from it.
  function charts() {
    var figures = document.querySelectorAll("figure.chart[data-source]");
    if (!figures.length || !window.uPlot) return;
    var bySource = {};
    figures.forEach(function (f) {
      var src = f.getAttribute("data-source");
      (bySource[src] = bySource[src] || []).push(f);
    });
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    var colors = dark ? ["#6cb6ff", "#ffa657", "#7ee2a0"] : ["#0a5bd3", "#d4621b", "#146c2e"];
    Object.keys(bySource).forEach(function (src) {
      var data = { t: [], v: [] };
      var plots = bySource[src].map(function (f) {
        var idx = f.getAttribute("data-series").split(",").map(Number);
        var labels = f.getAttribute("data-labels").split("|");
        var unit = f.getAttribute("data-unit");
        var el = f.querySelector(".plot");
        var opts = {
          width: Math.max(300, el.clientWidth || 400), height: 180,
          series: [{}].concat(idx.map(function (_, i) {
            return { label: labels[i], stroke: colors[i % colors.length], width: 1.5, spanGaps: false };
          })),
          axes: [{ stroke: dark ? "#a0a9b4" : "#57606a" }, { stroke: dark ? "#a0a9b4" : "#57606a", label: unit, size: 60 }],
          legend: { live: false }
        };
        var plot = new window.uPlot(opts, [[]].concat(idx.map(function () { return []; })), el);
        f.classList.add("drawn");
        return { idx: idx, plot: plot };
      });
      function redraw() {
        var cutoff = (Date.now() / 1000) - 3600;
        while (data.t.length && data.t[0] < cutoff) { data.t.shift(); data.v.forEach(function (s) { s.shift(); }); }
        plots.forEach(function (p) {
          p.plot.setData([data.t].concat(p.idx.map(function (i) { return data.v[i] || []; })));
        });
      }
      var es = new EventSource(src);
      es.addEventListener("init", function (e) {
        var d = JSON.parse(e.data);
        data.t = d.t; data.v = d.v;
        redraw();
      });
      es.addEventListener("points", function (e) {
        JSON.parse(e.data).forEach(function (p) {
          data.t.push(p.t);
          p.v.forEach(function (x, i) { (data.v[i] = data.v[i] || []).push(x); });
        });
        redraw();
      });
      document.addEventListener("visibilitychange", function () { if (document.hidden) es.close(); });
    });
  }

  function init() {
    document.documentElement.classList.remove("no-js");
    localTimes(document);
    document.querySelectorAll("section.tail[data-tail]").forEach(tail);
    document.querySelectorAll("form.query[data-search]").forEach(search);
    charts();
    document.body.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
