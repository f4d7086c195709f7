// Every few seconds: fetch the page's live regions (JSON) and replace those that changed.
// Inputs the user has typed in, or that hold a refused value (data-keep), are left alone.
(function () {
  "use strict";
  var body = document.body;
  var url = body.dataset.live;
  var every = parseFloat(body.dataset.refresh) * 1000;
  var note = document.getElementById("connection");
  if (!url || !(every > 0)) return;
  var last = {};
  var touched = {};
  document.addEventListener("input", function (event) {
    if (event.target.name) touched[event.target.name] = true;
  });

  function say(problem) {
    note.hidden = !problem;
    note.textContent = problem || "";
  }

  function apply(data) {
    say(data.problem);
    var regions = data.regions || {};
    Object.keys(regions).forEach(function (id) {
      var element = document.getElementById(id);
      if (element && !element.hasAttribute("data-keep") && last[id] !== regions[id]) {
        element.innerHTML = regions[id];
      }
      last[id] = regions[id];
    });
    var values = data.values || {};
    Object.keys(values).forEach(function (name) {
      var input = document.getElementsByName(name)[0];
      if (input && !touched[name] && !input.hasAttribute("data-keep") &&
          input !== document.activeElement) {
        input.value = values[name];
      }
    });
  }

  function poll() {
    if (document.hidden) return setTimeout(poll, every);
    fetch(url, {cache: "no-store", headers: {Accept: "application/json"}})
      .then(function (response) { return response.json(); })
      .then(apply, function () {
        say("The dashboard does not answer: is `spotty dashboard` still running?");
      })
      .then(function () { setTimeout(poll, every); });
  }

  setTimeout(poll, every);
})();
