// The console works without this script; it only adds copy buttons and auto-submitting filters.
"use strict";

function announce(button, text) {
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = text;
  setTimeout(() => { button.textContent = original; }, 2000);
}

async function copyFrom(button) {
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  try {
    await navigator.clipboard.writeText(field.value);
  } catch (_) {
    // Not a secure context, or no permission: fall back to selecting the text.
    field.focus();
    field.select();
    if (!document.execCommand || !document.execCommand("copy")) {
      announce(button, "Press Ctrl+C");
      return;
    }
  }
  announce(button, "Copied");
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.setAttribute("aria-live", "polite");
    button.addEventListener("click", () => copyFrom(button));
  }
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  // A switch or button submits once: a double click must not flip a setting back.
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", () => {
      setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }), 0);
    });
  }
});
