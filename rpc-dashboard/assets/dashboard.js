// The dashboard's only script: asks before destructive actions, and keeps
// a running call's progress up to date. Every page works without it.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A call that has yet to finish: its progress fragment is fetched every
// second and put in place (the server renders and escapes it), until the
// fragment says the call finished or the page has been open an hour.
(function () {
  var section = document.querySelector("[data-progress-url]");
  if (!section || !window.fetch) {
    return;
  }
  var url = section.getAttribute("data-progress-url");
  var left = 3600;
  function poll() {
    left -= 1;
    window.fetch(url, { credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var holder = section.querySelector(".progress-value");
        var next = document.createElement("div");
        next.innerHTML = html;
        var value = next.querySelector(".progress-value");
        if (holder && value) {
          holder.replaceWith(value);
        }
        if (value && value.hasAttribute("data-finished")) {
          left = 0;
        }
      })
      .catch(function () {})
      .then(function () {
        if (left > 0) {
          window.setTimeout(poll, 1000);
        }
      });
  }
  window.setTimeout(poll, 1000);
})();
