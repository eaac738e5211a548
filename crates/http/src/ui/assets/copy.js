// Copy buttons: every button[data-copy] copies the text of the element whose id it names.
// The buttons are hidden in the markup and shown here, so without scripts nobody sees a
// button that does nothing; the text stays selectable either way.
(function () {
  "use strict";
  var status = document.getElementById("copy-status");

  function announce(text) {
    if (!status) return;
    status.textContent = "";
    // A fresh text node after a tick makes screen readers announce repeated messages.
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP pages (other than localhost) have no clipboard API.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var copied = document.execCommand("copy");
      document.body.removeChild(area);
      if (copied) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
        announce("Copied to the clipboard");
        window.setTimeout(function () { button.textContent = label; }, 2000);
      }, function () {
        announce("Copying failed: select the text and copy it");
      });
    });
  });
})();

// A running build's log: `pre[data-log-stream]` follows the server-sent events at that URL
// (`log` events append text, `end` names the final status), then reloads the page to show
// the final facts. Without scripts the page shows the log as it was when loaded.
(function () {
  "use strict";
  var pre = document.querySelector("pre[data-log-stream]");
  if (!pre || !window.EventSource) return;
  var source = new EventSource(pre.getAttribute("data-log-stream"));
  var shown = pre.textContent.length;
  var first = true;
  source.addEventListener("log", function (event) {
    // The stream starts from the beginning: skip what the page already holds.
    var text = event.data;
    if (first) {
      first = false;
      if (text.length <= shown) return;
      text = text.slice(shown);
    }
    pre.textContent += text;
    pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("end", function (event) {
    source.close();
    var status = document.querySelector("[data-build-status]");
    if (status) status.textContent = event.data;
    pre.removeAttribute("data-log-stream");
    pre.setAttribute("data-log-ended", event.data);
    // The digest, commit and duration are known now: show them.
    window.setTimeout(function () { window.location.reload(); }, 500);
  });
})();
