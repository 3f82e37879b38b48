// /signin: a dev token from a dev-mode API (POST /v1/dev/token), or a pasted bearer token.

import { $, api, claims, guardErrors, renderHeader, setToken, show } from "./api.js";

guardErrors();
renderHeader();

const errorBox = $("#signin-error");

function next() {
  const target = new URLSearchParams(location.search).get("next");
  // only a path of this site: never an address elsewhere
  return target && target.startsWith("/") && !target.startsWith("//") ? target : "/";
}

$("#dev-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const userId = $("#login-user").value.trim();
  const name = $("#login-name").value.trim();
  const roles = $("#login-roles").value.split(",").map((r) => r.trim().toLowerCase()).filter(Boolean);
  const year = $("#login-birth-year").value.trim();
  const body = { userId, roles, premium: $("#login-premium").checked };
  if (name) body.name = name;
  if (year) body.birthYear = Number(year);
  const submit = $("[data-testid=login-submit]");
  submit.disabled = true;
  const result = await api("POST", "/v1/dev/token", body, { auth: false });
  submit.disabled = false;
  if (!result.ok) {
    const words = result.status === 404
      ? "This API is not in dev mode, so it issues no tokens: paste a bearer token below."
      : result.problem?.errors
        ? `Check the form: ${result.problem.errors.map((e) => `${e.loc.slice(1).join(".")} ${e.msg}`).join("; ")}`
        : result.message;
    show(errorBox, words);
    return;
  }
  setToken(result.data.token);
  location.href = next();
});

$("#token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("#login-token").value.trim().replace(/^Bearer\s+/i, "");
  if (!claims(value)) {
    show(errorBox, "That is not a token this console can read (a JWT has three parts separated by dots).");
    return;
  }
  setToken(value);
  const check = await api("GET", "/v1/wallet"); // any signed-in read: does the API accept it?
  if (!check.ok) {
    show(errorBox, `The API refused the token: ${check.message}`);
    return;
  }
  location.href = next();
});
