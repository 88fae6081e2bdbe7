// MFA enrolment: POST auth/login -> auth/mfa/enroll -> auth/mfa/activate [-> auth/password].
// Tokens stay in this closure (never in storage); the QR code is drawn through an <img>, so the
// SVG the API returns cannot run script.
"use strict";
(function () {
  var state = { enrollment: null, current: null, access: null, user: "" };
  var $ = function (id) { return document.getElementById(id); };

  function show(id) {
    ["signin", "enrol", "password", "done"].forEach(function (s) { $("step-" + s).hidden = s !== id; });
    $("message").textContent = "";
  }

  function fail(text) { $("message").textContent = text; }

  function call(path, body, token) {
    var headers = { "Content-Type": "application/json" };
    if (token) { headers.Authorization = "Bearer " + token; }
    return fetch(path, { method: "POST", headers: headers, body: JSON.stringify(body || {}) })
      .then(function (reply) {
        return reply.json().catch(function () { return {}; }).then(function (data) {
          if (!reply.ok) { throw new Error(data.message || ("request failed (" + reply.status + ")")); }
          return data;
        });
      });
  }

  $("signin-form").addEventListener("submit", function (event) {
    event.preventDefault();
    state.user = $("username").value.trim();
    state.current = $("password").value;
    call("auth/login", { tenant_id: $("tenant").value.trim(), username: state.user, password: state.current })
      .then(function (reply) {
        if (reply.status !== "MFA_ENROLLMENT_REQUIRED") {
          throw new Error("Two-factor sign-in is already set up for this account.");
        }
        state.enrollment = reply.enrollment_token;
        return call("auth/mfa/enroll", {}, state.enrollment);
      })
      .then(function (enrolment) {
        $("qr").src = "data:image/svg+xml;base64," + btoa(enrolment.qr_svg);
        $("secret").textContent = enrolment.secret;
        var list = $("backup-codes");
        list.textContent = "";
        enrolment.backup_codes.forEach(function (code) {
          var item = document.createElement("li");
          item.textContent = code;
          list.appendChild(item);
        });
        show("enrol");
        $("code").focus();
      })
      .catch(function (error) { fail(error.message); });
  });

  $("activate-form").addEventListener("submit", function (event) {
    event.preventDefault();
    call("auth/mfa/activate", { enrollment_token: state.enrollment, code: $("code").value.trim() })
      .then(function (reply) {
        state.access = reply.access_token;
        if (reply.password_change_required) { show("password"); $("new-password").focus(); }
        else { finish(); }
      })
      .catch(function (error) { fail(error.message); });
  });

  $("password-form").addEventListener("submit", function (event) {
    event.preventDefault();
    call("auth/password", { current_password: state.current, new_password: $("new-password").value }, state.access)
      .then(finish)
      .catch(function (error) { fail(error.message); });
  });

  function finish() {
    state.current = state.access = state.enrollment = null;
    $("done-user").textContent = state.user;
    show("done");
  }
})();
