// /me: the upload form (XMLHttpRequest with a byte progress bar) and live submission states.
// The files go into FormData as File objects: the browser streams them from disk as it sends,
// the page never reads them into memory. Nothing here builds HTML from data: the rows come
// rendered (and escaped) by the server, and problems are set as text.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  var rows = document.getElementById("my-rows");
  if (!form || !rows) { return; }
  var csrf = form.getAttribute("data-csrf");
  var bar = document.getElementById("upload-bar");
  var bytes = document.getElementById("upload-bytes");
  var progress = document.getElementById("upload-progress");
  var result = document.getElementById("upload-result");
  var button = document.getElementById("upload-button");
  var live = document.getElementById("live-status");
  var quotaLeft = document.getElementById("quota-left");
  var datalist = document.getElementById("method-names");
  var phases = document.getElementById("me-phases");
  var timer = null;

  function mb(n) { return (n / 1048576).toFixed(n < 10485760 ? 2 : 1) + " MB"; }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function line(problem) {
    // A problem of a refused prediction file: where (line, column), what, how often.
    if (typeof problem === "string") { return problem; }
    var where = [];
    if (problem.row !== null && problem.row !== undefined) { where.push("line " + problem.row); }
    if (problem.column) { where.push("column " + problem.column); }
    if (problem.loc) { where.push(problem.loc.join(".")); }
    var text = (where.length ? where.join(", ") + ": " : "") + (problem.message || "");
    if (problem.value !== null && problem.value !== undefined) { text += " (value " + JSON.stringify(problem.value) + ")"; }
    if (problem.count > 1) { text += " — " + problem.count + " times"; }
    return text;
  }

  function showRefusal(status, body) {
    clear(result);
    var box = document.createElement("div");
    box.className = "error";
    box.id = "upload-problems";
    box.setAttribute("role", "alert");
    var head = document.createElement("p");
    var detail = body && body.detail;
    var message = "The upload was refused (HTTP " + status + (body && body.error ? ", " + body.error : "") + ")";
    var problems = [];
    if (typeof detail === "string") { message += ": " + detail; }
    else if (Array.isArray(detail)) { problems = detail; }
    else if (detail && typeof detail === "object") {
      if (detail.message) { message += ": " + detail.message; }
      if (Array.isArray(detail.problems)) { problems = detail.problems; }
      if (detail.resets_at) { message += " (resets at " + detail.resets_at + ")"; }
    }
    head.textContent = message;
    box.appendChild(head);
    if (problems.length) {
      var list = document.createElement("ul");
      list.className = "problems";
      problems.forEach(function (p) {
        var item = document.createElement("li");
        item.textContent = line(p);
        list.appendChild(item);
      });
      box.appendChild(list);
    }
    result.appendChild(box);
  }

  function showAccepted(body) {
    clear(result);
    var ok = document.createElement("p");
    ok.className = "flash";
    ok.id = "upload-accepted";
    ok.textContent = "Submission " + body.id + " accepted (" + body.state + ")" + (body.duplicate ? ", an earlier upload with the same key" : "") + ".";
    result.appendChild(ok);
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = document.getElementById("file").files[0];
    var checkpoint = document.getElementById("checkpoint").files[0];
    var data = new FormData();
    data.append("country", document.getElementById("country").value);
    data.append("method", document.getElementById("method").value);
    var description = document.getElementById("description").value;
    if (description) { data.append("description", description); }
    if (checkpoint) { data.append("outputs", document.getElementById("outputs").value); }
    if (file) { data.append("file", file, file.name); }
    if (checkpoint) { data.append("checkpoint", checkpoint, checkpoint.name); }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action"));
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Idempotency-Key", newKey());
    xhr.setRequestHeader("Accept", "application/json");
    progress.hidden = false;
    bar.value = 0;
    bytes.textContent = "";
    button.disabled = true;
    clear(result);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.max = e.total;
        bar.value = e.loaded;
        bytes.textContent = mb(e.loaded) + " of " + mb(e.total) + " sent";
      }
    });
    xhr.addEventListener("load", function () {
      button.disabled = false;
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = { detail: xhr.responseText }; }
      if (xhr.status === 202) {
        bytes.textContent = "sent; checking and queueing done";
        showAccepted(body);
        form.reset();
        poll(0);
      } else if (xhr.status === 401) {
        window.location.assign("/login?err=signin");
      } else {
        showRefusal(xhr.status, body);
      }
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      showRefusal(0, { detail: "the connection failed during the upload; nothing may have been stored — try again" });
    });
    xhr.send(data);
  });

  function poll(delay) {
    if (timer !== null) { window.clearTimeout(timer); }
    timer = window.setTimeout(refresh, delay);
  }

  function refresh() {
    timer = null;
    var xhr = new XMLHttpRequest();
    xhr.open("GET", "/me/submissions.json");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.addEventListener("load", function () {
      if (xhr.status === 401) { window.location.assign("/login?err=signin"); return; }
      if (xhr.status !== 200) { live.textContent = "Live updates paused (HTTP " + xhr.status + "); retrying."; poll(10000); return; }
      var body = JSON.parse(xhr.responseText);
      // The rows are the server's own rendering of them (escaped by its templates).
      rows.innerHTML = body.rows;
      // The phase box and the selection counts, also the server's own (escaped) rendering.
      if (phases && typeof body.phases_html === "string") { phases.innerHTML = body.phases_html; }
      if (body.phase && !body.phase.open) { quotaLeft.textContent = "none: no phase takes uploads now"; }
      else if (body.quota.left === null) { quotaLeft.textContent = "no limit (organisers and baselines)"; }
      else { quotaLeft.textContent = body.quota.left + " of " + body.quota.limit; }
      clear(datalist);
      body.methods.forEach(function (m) { var o = document.createElement("option"); o.value = m; datalist.appendChild(o); });
      live.textContent = body.pending ? "Watching the queued and running submissions…" : "";
      poll(body.pending ? 1500 : 15000);
    });
    xhr.addEventListener("error", function () { poll(10000); });
    xhr.send();
  }

  poll(rows.querySelector("[data-state='queued'], [data-state='running']") ? 1000 : 15000);
})();
