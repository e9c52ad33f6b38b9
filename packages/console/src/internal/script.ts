/**
 * The console's one script, served as a file (the pages allow no inline script): keeps the token in the tab's
 * session storage, refreshes live sections, and runs the buttons that change something (with a confirmation, the
 * token as a bearer header, and the outcome in the status line).
 */
export const script = String.raw`"use strict"
const tokenKey = "deimos-console-token"
const status = document.getElementById("status")
const say = (text, kind) => {
  if (!status) return
  status.textContent = text
  status.dataset.kind = kind || "info"
}
const headers = () => {
  const token = sessionStorage.getItem(tokenKey)
  return token ? { authorization: "Bearer " + token } : {}
}
const messageOf = async (response) => {
  if (response.status === 401) return "Not allowed: the token is missing or not accepted. Enter the console token at the top of the page."
  try {
    const body = await response.json()
    if (body && typeof body.message === "string") return body.message
  } catch (e) {}
  return "The request failed (HTTP " + response.status + ")."
}
const send = async (method, url) => {
  try {
    const response = await fetch(url, { method, headers: headers() })
    return response.ok ? { ok: true } : { ok: false, message: await messageOf(response) }
  } catch (e) {
    return { ok: false, message: "The console cannot reach its server: " + e }
  }
}

const form = document.getElementById("token-form")
if (form) {
  const input = document.getElementById("token")
  if (sessionStorage.getItem(tokenKey)) input.placeholder = "(saved for this tab)"
  form.addEventListener("submit", (event) => {
    event.preventDefault()
    if (input.value === "") sessionStorage.removeItem(tokenKey)
    else sessionStorage.setItem(tokenKey, input.value)
    input.value = ""
    input.placeholder = sessionStorage.getItem(tokenKey) ? "(saved for this tab)" : ""
    say(sessionStorage.getItem(tokenKey) ? "Token saved for this tab." : "Token cleared.")
  })
}

for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", async () => {
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) return
    button.disabled = true
    say(button.dataset.busy || "Working…")
    const result = await send(button.dataset.method || "POST", button.dataset.action)
    button.disabled = false
    if (!result.ok) return say(result.message, "error")
    say(button.dataset.done || "Done.", "ok")
    if (button.dataset.then) location.assign(button.dataset.then)
    else location.reload()
  })
}

for (const button of document.querySelectorAll("button[data-bulk]")) {
  button.addEventListener("click", async () => {
    const urls = JSON.parse(button.dataset.bulk)
    if (!confirm(button.dataset.confirm)) return
    button.disabled = true
    let done = 0
    let failed = 0
    let last = ""
    for (const url of urls) {
      const result = await send("POST", url)
      if (result.ok) done++
      else {
        failed++
        last = result.message
        if (last.startsWith("Not allowed")) break
      }
      say("Retried " + (done + failed) + " of " + urls.length + ": " + done + " succeeded, " + failed + " failed.")
    }
    button.disabled = false
    const summary = "Bulk retry finished: " + done + " succeeded, " + failed + " failed" + (last ? " (last error: " + last + ")" : "") + "."
    say(summary, failed > 0 ? "error" : "ok")
    if (done > 0) setTimeout(() => location.reload(), 1500)
  })
}

for (const section of document.querySelectorAll("[data-live]")) {
  const every = Number(section.dataset.every || 2000)
  const tick = async () => {
    try {
      const response = await fetch(section.dataset.live, { headers: { accept: "text/html" } })
      if (response.ok) {
        section.innerHTML = await response.text()
        section.dataset.refreshed = new Date().toISOString()
      } else say(await messageOf(response), "error")
    } catch (e) {
      say("Live refresh failed: " + e, "error")
    }
    setTimeout(tick, every)
  }
  setTimeout(tick, every)
}
`
