// The sandbox page: pick a persona, then chat with the real bot through the sandbox API.
// Plain JavaScript, no build step. Server: api/routes/sandbox.py. Bot HTML arrives sanitised (api/sandbox.py).
"use strict";

(() => {
  const API = "/sandbox/api";
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "html") node.innerHTML = value; // only for HTML the server sanitised
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  };

  const state = {
    lang: localStorage.getItem("sandbox.lang") || ((navigator.language || "id").startsWith("en") ? "en" : "id"),
    strings: {},
    personas: null,
    chatId: null,
    persona: null,
    version: 0,
    alertSeq: 0,
    gen: 0, // bumped whenever the open chat changes: stale poll loops stop
    poll: null, // AbortController of the running long poll
    pending: 0,
    keyboard: null,
    keyboardOpen: true,
    commands: [],
    messages: new Map(), // id → {data, node}
    stick: true, // keep the newest message in view unless the person scrolled up to read
  };

  const s = (key, params = {}) => {
    let text = state.strings[key] ?? key;
    for (const [k, v] of Object.entries(params)) text = text.replace(`{${k}}`, v);
    return text;
  };

  // --- HTTP ------------------------------------------------------------------------------------
  async function getJSON(path, signal) {
    const res = await fetch(path, { signal, cache: "no-store" });
    if (!res.ok) throw Object.assign(new Error(`${res.status} ${path}`), { status: res.status });
    return res.json();
  }

  async function postJSON(path, body = {}) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Sandbox": "1" },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw Object.assign(new Error(`${res.status} ${path}`), { status: res.status, data });
    return data;
  }

  // --- chrome: words, language ---------------------------------------------------------------
  function applyStrings() {
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = s(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = s(node.dataset.i18nPlaceholder);
    for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", s(node.dataset.i18nLabel));
    for (const btn of document.querySelectorAll(".lang button")) btn.setAttribute("aria-pressed", String(btn.dataset.lang === state.lang));
  }

  function initials(name) {
    const words = String(name).replace(/\(.*?\)/g, "").trim().split(/\s+/).filter(Boolean);
    return ((words[0] || "?")[0] + (words[1] ? words[1][0] : "")).toUpperCase();
  }

  const AVATAR_COLOURS = [
    ["#ff885e", "#ff516a"], ["#ffcd6a", "#ffa85c"], ["#82b1ff", "#665fff"], ["#a0de7e", "#54cb68"],
    ["#53edd6", "#28c9b7"], ["#72d5fd", "#2a9ef1"], ["#e0a2f3", "#d669ed"],
  ];
  function avatar(name, id, extra = "") {
    const [a, b] = AVATAR_COLOURS[Number(id) % AVATAR_COLOURS.length];
    return el("div", { class: `avatar ${extra}`, style: `background:linear-gradient(135deg,${a},${b})`, "aria-hidden": "true", text: initials(name) });
  }

  // --- screen 1: personas -----------------------------------------------------------------------
  async function showPersonas() {
    stopPolling();
    state.chatId = null;
    $("#chat-screen").hidden = true;
    $("#persona-screen").hidden = false;
    document.title = `SIMULASI · PCare Frontdesk`;
    const data = await getJSON(`${API}/personas?lang=${state.lang}`);
    state.strings = data.strings;
    state.personas = data;
    applyStrings();
    const list = $("#persona-list");
    list.replaceChildren(...data.personas.map((p) => personaItem(p)));
    const fresh = $("#new-person-list");
    fresh.replaceChildren(personaItem(data.new_person, "new-person"), ...data.recent.map((p) => personaItem(p, "recent-person")));
  }

  function stateBadge(p) {
    if (p.state === "active" && !p.new) return null;
    const cls = p.state === "active" ? "" : p.state === "pending" || p.state === "stranger" ? "warn" : "bad";
    return el("span", { class: `badge ${cls}`, "data-testid": "persona-state", text: s(`state_${p.state}`) });
  }

  function personaItem(p, testid = "persona") {
    const open = () => {
      sessionStorage.setItem(`sandbox.name.${p.telegram_id}`, p.name);
      location.hash = `#/chat/${p.telegram_id}`;
    };
    const button = el(
      "button",
      { type: "button", class: "persona", "data-testid": testid, "data-telegram-id": p.telegram_id, onclick: open },
      avatar(p.name, p.telegram_id),
      el(
        "div",
        { class: "persona-text" },
        el("div", { class: "persona-name" }, document.createTextNode(p.name), stateBadge(p)),
        el("div", { class: "persona-label", text: p.label }),
        el("div", { class: "persona-meta", text: s("telegram_id", { id: p.telegram_id }) }),
      ),
      el("span", { class: "chev", "aria-hidden": "true", text: "›" }),
    );
    return el("li", {}, button);
  }

  // --- screen 2: the chat ------------------------------------------------------------------------
  async function showChat(chatId) {
    stopPolling();
    const gen = ++state.gen;
    state.chatId = chatId;
    state.version = 0;
    state.alertSeq = 0;
    state.messages.clear();
    state.keyboard = null;
    state.keyboardOpen = true;
    state.stick = true;
    for (const node of document.querySelectorAll("#messages .msg")) node.remove();
    $("#persona-screen").hidden = true;
    $("#chat-screen").hidden = false;
    closeMenu();
    if (!state.personas) {
      try {
        const data = await getJSON(`${API}/personas?lang=${state.lang}`);
        state.strings = data.strings;
        state.personas = data;
      } catch (err) {
        /* the chat still works; words fall back to keys */
      }
    }
    applyStrings();
    const name = sessionStorage.getItem(`sandbox.name.${chatId}`) || undefined;
    const snap = await postJSON(`${API}/chats/${chatId}/open`, { lang: state.lang, name });
    if (gen !== state.gen) return;
    apply(snap, true);
    $("#input").focus();
    pollLoop(gen);
  }

  function stopPolling() {
    state.gen++;
    if (state.poll) state.poll.abort();
    state.poll = null;
  }

  async function pollLoop(gen) {
    let failures = 0;
    while (gen === state.gen) {
      const ctrl = new AbortController();
      state.poll = ctrl;
      try {
        const snap = await getJSON(`${API}/chats/${state.chatId}/updates?after=${state.version}&wait=20`, ctrl.signal);
        if (gen !== state.gen) return;
        if (failures) hideToast();
        failures = 0;
        apply(snap, false);
      } catch (err) {
        if (gen !== state.gen || err.name === "AbortError") return;
        failures++;
        if (failures === 2) toast(s("offline"), 0);
        await new Promise((r) => setTimeout(r, Math.min(500 * failures, 4000)));
      }
    }
  }

  function apply(snap, initial) {
    state.persona = snap.persona;
    const who = $("[data-testid=chat-persona]");
    who.textContent = snap.persona.name;
    who.title = `${snap.persona.name} · ${s("telegram_id", { id: snap.persona.telegram_id })} · ${s("phone", { phone: snap.persona.phone })}`;
    document.title = `SIMULASI · ${snap.persona.name}`;
    setSubtitle();
    let added = false;
    const box = $("#messages");
    for (const m of snap.messages) {
      const known = state.messages.get(m.id);
      if (m.deleted) {
        if (known) known.node.remove();
        state.messages.delete(m.id);
        continue;
      }
      const node = messageNode(m);
      if (known) {
        known.node.replaceWith(node);
        if (!initial) node.classList.add("flash");
      } else {
        box.append(node);
        added = true;
      }
      state.messages.set(m.id, { data: m, node });
    }
    $("[data-testid=empty]").hidden = state.messages.size > 0;
    $("[data-testid=start]").hidden = state.messages.size > 0;
    $("#composer").hidden = state.messages.size === 0;
    state.commands = snap.commands || [];
    renderKeyboard(snap.reply_keyboard);
    $("#input").placeholder = snap.placeholder || s("input");
    if (!$("#command-menu").hidden) renderMenu(currentFilter());
    for (const a of snap.alerts || []) {
      if (a.seq <= state.alertSeq) continue;
      state.alertSeq = a.seq;
      if (!initial) (a.show_alert ? showAlert : toast)(a.text);
    }
    state.version = Math.max(state.version, snap.version);
    box.dataset.version = String(state.version); // what the page has caught up with (tests wait on it)
    if (initial || state.stick || (added && lastIsMine())) scrollToEnd();
  }

  function lastIsMine() {
    const last = [...state.messages.values()].at(-1);
    return last && last.data.from === "user";
  }

  function scrollToEnd() {
    const box = $("#messages");
    box.scrollTop = box.scrollHeight;
    state.stick = true;
  }

  function timeOf(iso) {
    const d = new Date(iso);
    return d.toLocaleTimeString(state.lang === "en" ? "en-GB" : "id-ID", { hour: "2-digit", minute: "2-digit" });
  }

  function fileSize(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function messageNode(m) {
    const side = m.from === "bot" ? "in" : m.from === "user" ? "out" : "system";
    const meta = el(
      "span",
      { class: "meta" },
      m.edited ? el("span", { class: "edited", "data-testid": "edited", text: s("edited") }) : null,
      document.createTextNode(timeOf(m.date)),
      side === "out" ? el("span", { class: "ticks", text: "✓✓" }) : null,
    );
    const bubble = el("div", { class: "bubble" });
    if (m.document) {
      const href = `${API}/chats/${state.chatId}/documents/${encodeURIComponent(m.document.id)}`;
      bubble.append(
        el(
          "a",
          { class: "doc", href, download: m.document.name, "data-testid": "document", title: s("download") },
          el("span", { class: "doc-icon", html: '<svg viewBox="0 0 24 24"><path d="M12 4v11m0 0-4-4m4 4 4-4M5 19h14"/></svg>' }),
          el("span", {}, el("div", { class: "doc-name", text: m.document.name }), el("div", { class: "doc-size", text: fileSize(m.document.size) })),
        ),
      );
    }
    if (m.contact) {
      bubble.append(
        el(
          "div",
          { class: "contact", "data-testid": "contact" },
          avatar(m.contact.name, state.chatId || 0),
          el("div", {}, el("div", { class: "contact-name", text: m.contact.name }), el("div", { class: "contact-phone", text: m.contact.phone })),
        ),
      );
    }
    if (m.html || !m.document) bubble.append(el("div", { class: "text", "data-testid": "message-text", html: m.html }));
    bubble.append(meta);
    const node = el("div", { class: `msg ${side}`, "data-testid": "message", "data-id": m.id, "data-from": m.from, "data-edited": m.edited ? "true" : null }, bubble);
    if (m.keyboard && m.keyboard.length) node.append(inlineKeyboard(m));
    return node;
  }

  function inlineKeyboard(m) {
    const rows = m.keyboard.map((row) =>
      el(
        "div",
        { class: "inline-row" },
        ...row.map((b) => {
          if (b.kind === "url") {
            return el("a", { class: "inline-btn url", href: b.url, target: "_blank", rel: "noopener noreferrer", "data-testid": "inline-button", text: b.text, style: "text-decoration:none;display:grid;place-items:center" });
          }
          const btn = el("button", { type: "button", class: "inline-btn", "data-testid": "inline-button", "data-data": b.data || null, text: b.text, disabled: b.kind !== "callback" });
          if (b.kind === "callback") btn.addEventListener("click", () => press(m.id, b.data, btn));
          return btn;
        }),
      ),
    );
    return el("div", { class: "inline-kb", "data-testid": "inline-keyboard" }, ...rows);
  }

  function setSubtitle() {
    const sub = $("[data-testid=chat-subtitle]");
    if (state.pending > 0) {
      sub.textContent = s("typing");
      sub.classList.add("typing");
    } else {
      sub.textContent = s("bot");
      sub.classList.remove("typing");
    }
  }

  async function busy(work) {
    state.pending++;
    setSubtitle();
    try {
      return await work();
    } finally {
      state.pending--;
      setSubtitle();
    }
  }

  // --- actions -----------------------------------------------------------------------------------
  async function sendText(text) {
    text = text.trim();
    if (!text || !state.chatId) return;
    closeMenu();
    try {
      await busy(() => postJSON(`${API}/chats/${state.chatId}/messages`, { text }));
    } catch (err) {
      toast(s("failed"));
    }
  }

  async function shareContact() {
    try {
      await busy(() => postJSON(`${API}/chats/${state.chatId}/contact`));
    } catch (err) {
      toast(s("failed"));
    }
  }

  async function press(messageId, data, btn) {
    btn.classList.add("busy");
    try {
      await busy(() => postJSON(`${API}/chats/${state.chatId}/callback`, { message_id: messageId, data }));
    } catch (err) {
      toast(err.status === 409 ? s("button_gone") : s("failed"));
    } finally {
      btn.classList.remove("busy");
    }
  }

  // --- reply keyboard ----------------------------------------------------------------------------
  function renderKeyboard(kb) {
    const box = $("#reply-keyboard");
    const toggle = $("[data-testid=keyboard-toggle]");
    const changed = JSON.stringify(kb) !== JSON.stringify(state.keyboard);
    state.keyboard = kb;
    if (changed && kb) state.keyboardOpen = true;
    toggle.hidden = !kb;
    toggle.setAttribute("aria-pressed", String(Boolean(kb && state.keyboardOpen)));
    box.hidden = !kb || !state.keyboardOpen;
    if (!changed) return;
    if (!kb) {
      box.replaceChildren();
      return;
    }
    box.replaceChildren(
      ...kb.rows.map((row) =>
        el(
          "div",
          { class: "reply-row" },
          ...row.map((b) =>
            el("button", {
              type: "button",
              class: `reply-btn${b.request_contact ? " contact" : ""}`,
              "data-testid": b.request_contact ? "share-contact" : "reply-button",
              text: b.text,
              onclick: () => (b.request_contact ? shareContact() : sendText(b.text)),
            }),
          ),
        ),
      ),
    );
  }

  // --- command menu --------------------------------------------------------------------------------
  function currentFilter() {
    const v = $("#input").value;
    return v.startsWith("/") && !/\s/.test(v) ? v.slice(1).toLowerCase() : "";
  }

  function renderMenu(filter = "") {
    const list = $("#command-list");
    const items = state.commands.filter((c) => c.command.startsWith(filter));
    if (!state.commands.length) {
      list.replaceChildren(el("li", { class: "none", text: s("menu_empty") }));
      return;
    }
    list.replaceChildren(
      ...items.map((c) =>
        el(
          "li",
          {},
          el(
            "button",
            { type: "button", "data-testid": "command", "data-command": c.command, onclick: () => { $("#input").value = ""; sendText(`/${c.command}`); } },
            el("span", { class: "cmd", text: `/${c.command}` }),
            el("span", { class: "desc", text: c.description }),
          ),
        ),
      ),
    );
  }

  function openMenu(filter = "") {
    renderMenu(filter);
    $("#command-menu").hidden = false;
    $("[data-testid=menu-button]").setAttribute("aria-expanded", "true");
  }

  function closeMenu() {
    $("#command-menu").hidden = true;
    $("[data-testid=menu-button]").setAttribute("aria-expanded", "false");
  }

  // --- pop-ups -------------------------------------------------------------------------------------
  let toastTimer = null;
  function toast(text, ms = 2600) {
    const node = $("#toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toastTimer);
    if (ms) toastTimer = setTimeout(hideToast, ms);
  }
  function hideToast() {
    $("#toast").hidden = true;
  }
  function showAlert(text) {
    $("#alert-text").textContent = text;
    $("#alert").hidden = false;
    $("[data-testid=alert-ok]").focus();
  }

  // --- wiring --------------------------------------------------------------------------------------
  function route() {
    const match = location.hash.match(/^#\/chat\/(\d+)$/);
    (match ? showChat(Number(match[1])) : showPersonas()).catch((err) => {
      if (match && err.status === 404) {
        location.hash = "#/"; // not a sandbox chat (or the sandbox is off): back to the personas
        return;
      }
      console.error(err);
      toast(s("offline"), 0);
    });
  }

  function autoGrow() {
    const input = $("#input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 120)}px`;
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyStrings();
    $("#composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("#input");
      const text = input.value;
      input.value = "";
      autoGrow();
      sendText(text);
    });
    $("#input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("#composer").requestSubmit();
      } else if (event.key === "Escape") {
        closeMenu();
      }
    });
    $("#input").addEventListener("input", () => {
      autoGrow();
      const v = $("#input").value;
      if (v.startsWith("/") && !/\s/.test(v)) openMenu(currentFilter());
      else closeMenu();
    });
    $("[data-testid=menu-button]").addEventListener("click", () => ($("#command-menu").hidden ? openMenu() : closeMenu()));
    $("[data-testid=keyboard-toggle]").addEventListener("click", () => {
      state.keyboardOpen = !state.keyboardOpen;
      $("#reply-keyboard").hidden = !state.keyboard || !state.keyboardOpen;
      $("[data-testid=keyboard-toggle]").setAttribute("aria-pressed", String(state.keyboardOpen));
    });
    $("[data-testid=start]").addEventListener("click", () => sendText("/start"));
    $("[data-testid=back]").addEventListener("click", () => (location.hash = "#/"));
    $("[data-testid=alert-ok]").addEventListener("click", () => ($("#alert").hidden = true));
    $("#messages").addEventListener("click", () => closeMenu());
    $("#messages").addEventListener("scroll", () => {
      const box = $("#messages");
      state.stick = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    });
    for (const btn of document.querySelectorAll(".lang button")) {
      btn.addEventListener("click", () => {
        state.lang = btn.dataset.lang;
        localStorage.setItem("sandbox.lang", state.lang);
        showPersonas().catch(() => toast(s("offline"), 0));
      });
    }
    window.addEventListener("hashchange", route);
    route();
  });
})();
