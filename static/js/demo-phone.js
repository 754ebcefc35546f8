// The demo phone (/demo/phone/): sends texts as the customer through the demo's fake messaging provider and
// shows the company's answers as they arrive. Everything is drawn with textContent.
(function () {
  "use strict";
  var root = document.getElementById("demo-phone");
  if (!root) return;
  var thread = document.getElementById("phone-thread");
  var form = document.getElementById("phone-form");
  var input = document.getElementById("phone-text");
  var numberInput = document.getElementById("phone-number");
  var status = document.getElementById("phone-status");
  var shown = {};
  var reported = {};
  var POLL_MS = 1500;

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": cookie("csrftoken") },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error((data && data.message) || "The message could not be sent.");
        return data;
      });
    });
  }

  function draw(messages) {
    if (messages.length && thread.querySelector(".empty")) thread.textContent = "";
    var delivered = [];
    messages.forEach(function (m) {
      if (shown[m.id]) return;
      shown[m.id] = true;
      var li = document.createElement("li");
      li.className = "bubble";
      li.setAttribute("data-dir", m.dir);
      li.setAttribute("data-id", m.id);
      li.textContent = m.text;
      thread.appendChild(li);
      if (m.dir === "out" && !reported[m.id]) {
        reported[m.id] = true;
        delivered.push(m.id);
      }
    });
    thread.scrollTop = thread.scrollHeight;
    // The phone has shown them: the provider reports them delivered to the desk.
    if (delivered.length) post("/demo/phone/delivered", { ids: delivered }).catch(function () {});
  }

  function empty() {
    thread.textContent = "";
    var li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No messages yet. Ask about roaming, your bill or an order.";
    thread.appendChild(li);
  }

  function poll() {
    fetch("/demo/phone/messages?phone=" + encodeURIComponent(numberInput.value), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (data && data.messages) draw(data.messages);
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  numberInput.addEventListener("change", function () {
    shown = {};
    empty();
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    status.textContent = "";
    post("/demo/phone/send", { phone: numberInput.value, text: text })
      .then(function () { input.value = ""; })
      .catch(function (error) { status.textContent = error.message; });
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  empty();
  poll();
})();
