// biogate console: small enhancements over server-rendered pages (every page works without them).
"use strict";

// Live camera preview: poll the daemon for the newest frame, draw the face boxes, list the findings.
function startPreview(root) {
  const img = document.getElementById("preview-frame");
  const boxes = document.getElementById("preview-boxes");
  const list = document.getElementById("preview-findings");
  const count = document.getElementById("preview-count");
  let last = "";
  async function tick() {
    if (!document.body.contains(root)) return;
    try {
      const r = await fetch(root.dataset.url, {credentials: "same-origin", cache: "no-store"});
      if (r.ok) {
        const v = await r.json();
        if (v.frame) img.src = v.frame;
        boxes.replaceChildren(...v.faces.map((f) => {
          const b = document.createElement("div");
          b.className = f.main ? "box main" : "box";
          b.style.left = (100 * f.x) + "%"; b.style.top = (100 * f.y) + "%";
          b.style.width = (100 * f.w) + "%"; b.style.height = (100 * f.h) + "%";
          return b;
        }));
        const text = v.messages.join("|");
        if (text !== last) {            // announce only changes (aria-live)
          last = text;
          list.replaceChildren(...v.messages.map((m, i) => {
            const li = document.createElement("li");
            li.textContent = m;
            if (v.findings.length) li.className = "finding"; else li.className = "ok";
            li.dataset.code = v.findings[i] || "ok";
            return li;
          }));
        }
        if (count && v.count) count.textContent = v.count;
        root.dataset.state = v.findings.length ? "findings" : "ok";
      } else if (r.status === 401) { return; }
    } catch (e) { /* the next tick tries again */ }
    setTimeout(tick, 300);
  }
  tick();
}

// The consent text follows what the teller fills in (name, purpose, modalities), as the customer will sign it.
function consentForm(form) {
  const text = document.getElementById("consent-text");
  const purpose = document.getElementById("purpose");
  const name = document.getElementById("given_by");
  function render() {
    const mods = [...form.querySelectorAll("input[name=modalities]:checked")]
      .map((c) => c.parentElement.textContent.trim());
    text.textContent = text.dataset.template
      .replace("{name}", name.value || "…").replace("{bank}", text.dataset.bank)
      .replace("{purpose}", purpose.options[purpose.selectedIndex].text).replace("{modalities}", mods.join(", ") || "…");
  }
  form.addEventListener("input", render);
  form.addEventListener("change", render);
  document.getElementById("print-consent").addEventListener("click", () => window.print());
  render();
}

// Evidence is fetched (and so audited) only when the auditor opens it.
function evidence(details) {
  details.addEventListener("toggle", () => {
    const img = details.querySelector("img[data-src]");
    if (details.open && img && !img.src) img.src = img.dataset.src;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const preview = document.getElementById("preview");
  if (preview) startPreview(preview);
  const form = document.getElementById("new-customer");
  if (form) consentForm(form);
  document.querySelectorAll("details[id^=evidence-]").forEach(evidence);
});
