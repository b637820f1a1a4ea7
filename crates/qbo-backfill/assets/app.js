// Filters: an input with data-filter="#table" hides the rows whose data-name lacks its text.
(function () {
  var inputs = document.querySelectorAll("input[data-filter]");
  Array.prototype.forEach.call(inputs, function (input) {
    var table = document.querySelector(input.getAttribute("data-filter"));
    if (!table) { return; }
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(table.querySelectorAll("tbody tr"), function (tr) {
        var name = (tr.getAttribute("data-name") || "").toLowerCase();
        tr.hidden = q !== "" && name.indexOf(q) < 0;
      });
    });
  });
})();
// qbo-backfill: progressive enhancement only. Confirms destructive forms, and on a run's page
// refreshes its status and windows and streams its log while it is going on.
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });

  var live = document.getElementById("live");
  var log = document.getElementById("log");
  if (!live || !log) { return; }
  var runId = live.getAttribute("data-run-id");
  var after = 0;

  function appendLines(lines) {
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    lines.forEach(function (line) {
      var span = document.createElement("span");
      span.className = "l-" + line.level;
      span.textContent = line.text + "\n";
      log.appendChild(span);
    });
    if (atBottom) { log.scrollTop = log.scrollHeight; }
  }

  function pollLog() {
    return fetch("/runs/" + runId + "/log?after=" + after, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.lines) { appendLines(body.lines); after = body.next; }
        return body && body.lines && body.lines.length === 1000;
      });
  }

  function pollLive() {
    return fetch("/runs/" + runId + "/live", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var box = document.createElement("div");
        box.innerHTML = html;
        var inner = box.firstElementChild;
        if (inner && inner.id === "live") {
          // The refresh keeps what the operator was on: the focused button (the same
          // form's) and how far the windows table was scrolled sideways.
          var focused = document.activeElement;
          var form = focused && live.contains(focused) && focused.form;
          var action = form ? form.getAttribute("action") : null;
          var wrap = live.querySelector(".table-wrap");
          var scrolled = wrap ? wrap.scrollLeft : 0;
          live.innerHTML = inner.innerHTML;
          live.setAttribute("data-final", inner.getAttribute("data-final"));
          if (action) {
            var again = live.querySelector('form[action="' + action + '"] button');
            if (again) { again.focus({ preventScroll: true }); }
          }
          var wrapAgain = live.querySelector(".table-wrap");
          if (wrapAgain) { wrapAgain.scrollLeft = scrolled; }
        }
      });
  }

  // Once the run is final, the page is refreshed a few more times: what the worker records
  // just after the run's end (the company's reconnect banner) still shows without a reload.
  var finalTicks = 0;
  function tick() {
    if (live.getAttribute("data-final") === "true") { finalTicks += 1; }
    Promise.all([pollLog(), pollLive()]).then(function (res) {
      var more = res[0];
      if (more) { return tick(); }
      if (finalTicks < 3) { window.setTimeout(tick, 1000); }
      else { pollLog(); }
    }, function () { window.setTimeout(tick, 3000); });
  }
  tick();
})();
// The trigger form says when the trigger it describes would fire, in its zone and in UTC, or why
// it would be refused, as it is typed (GET /triggers/when: the server's own validation).
(function () {
  "use strict";
  var out = document.getElementById("trigger-when");
  var form = out && out.closest("form");
  if (!form || !window.fetch || !window.URLSearchParams) { return; }
  var timer = null;
  var asked = 0;
  function ask() {
    var data = new FormData(form);
    data.delete("csrf");
    var when = data.get("kind") === "cron" ? data.get("cron") : data.get("local_time");
    if (!when || !String(when).trim()) {
      out.textContent = "";
      out.className = "muted small";
      return;
    }
    var n = ++asked;
    fetch("/triggers/when?" + new URLSearchParams(data).toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || n !== asked) { return; }
        out.textContent = body.text;
        out.className = body.ok ? "small" : "error small";
      }, function () {});
  }
  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(ask, 250);
  }
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  ask();
})();
