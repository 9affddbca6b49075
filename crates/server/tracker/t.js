/* upshot tracker: page views, placement impressions / clicks / hovers / discards, and a
 * small API. Written for upshot, no third-party code. Served by `upshot serve` at /t.js.
 *
 * Paste into every page (see docs/tracker.md):
 *   <script>window.upshot=window.upshot||function(){(upshot.q=upshot.q||[]).push(arguments)}</script>
 *   <script async src="https://COLLECTOR/t.js" data-key="up_pub_..." data-page-type="product"></script>
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__upshotLoaded) return;
  window.__upshotLoaded = true;

  var KEY = script.getAttribute("data-key") || "";
  var ENDPOINT = new URL(script.src, location.href).origin + "/v1/beacon?key=" + encodeURIComponent(KEY);
  var COOKIE = "upshot_vid";
  var BATCH_BYTES_MAX = 48 * 1024; // under the 50 KB a sendBeacon may carry
  var BATCH_EVENTS_MAX = 50;
  var FLUSH_MS = 2000;
  var VISIBLE_RATIO = 0.5; // half of the element...
  var VISIBLE_MS = 1000; // ...for one continuous second, on a visible tab
  var HOVER_MS = 500;
  var RETRIES_MAX = 6;

  var consentRequired = script.getAttribute("data-consent") === "required";
  var consent = consentRequired ? null : true; // null: not yet decided
  var pageType = script.getAttribute("data-page-type") || undefined;
  var queue = []; // events not yet sent
  var timer = null;
  var retryDelay = 1000;
  var visitorId = null;
  var profileId = null;

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  // The first-party visitor id: a cookie on the shop's own domain, set only with consent.
  function visitor() {
    if (visitorId) return visitorId;
    var match = document.cookie.match(/(?:^|; )upshot_vid=([^;]+)/);
    visitorId = match ? decodeURIComponent(match[1]) : randomId();
    if (consent === true) {
      document.cookie = COOKIE + "=" + encodeURIComponent(visitorId) + "; path=/; max-age=31536000; SameSite=Lax" +
        (location.protocol === "https:" ? "; Secure" : "");
    }
    return visitorId;
  }

  function track(type, fields) {
    if (consent === false) return;
    var event = { event_id: randomId(), type: type, ts: Date.now(), url: location.href };
    if (pageType) event.page_type = pageType;
    if (profileId) event.profile_id = profileId;
    for (var name in fields) if (fields[name] !== undefined && fields[name] !== null) event[name] = fields[name];
    queue.push(event);
    if (queue.length >= BATCH_EVENTS_MAX) flush(false);
    else if (!timer) timer = setTimeout(function () { timer = null; flush(false); }, FLUSH_MS);
  }

  // Takes the next batch off the queue: at most BATCH_EVENTS_MAX events and
  // BATCH_BYTES_MAX bytes of NDJSON, each stamped with the visitor and sent_at.
  function nextBatch() {
    var lines = [], bytes = 0, sentAt = Date.now(), id = visitor();
    while (queue.length && lines.length < BATCH_EVENTS_MAX) {
      var event = queue[0];
      event.visitor_id = event.visitor_id || id;
      event.sent_at = sentAt;
      var line = JSON.stringify(event);
      if (lines.length && bytes + line.length + 1 > BATCH_BYTES_MAX) break;
      queue.shift();
      lines.push(line);
      bytes += line.length + 1;
    }
    return lines;
  }

  function flush(leaving) {
    if (consent !== true || !queue.length) return;
    if (timer) { clearTimeout(timer); timer = null; }
    while (queue.length) {
      var lines = nextBatch();
      var body = lines.join("\n") + "\n";
      if (leaving && navigator.sendBeacon) {
        // The page is going away: the browser delivers it after we are gone.
        if (navigator.sendBeacon(ENDPOINT, new Blob([body], { type: "text/plain" }))) continue;
      }
      send(body, lines, 0);
      if (!leaving) break; // one request in flight at a time; the rest follow
    }
  }

  function send(body, lines, attempt) {
    fetch(ENDPOINT, { method: "POST", body: body, keepalive: true, headers: { "Content-Type": "text/plain" } })
      .then(function (response) {
        if (response.status === 429 || response.status >= 500) throw new Error("retry");
        retryDelay = 1000;
        if (queue.length) flush(false);
      })
      .catch(function () {
        if (attempt + 1 >= RETRIES_MAX) return;
        // Back off, then try the same batch again (event ids make a resend harmless).
        setTimeout(function () { send(body, lines, attempt + 1); }, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 60000);
      });
  }

  // Placements: elements with data-upshot-placement (and -kind, -items, -campaign,
  // -sequence, -experience, -label).
  function placementFields(element) {
    var data = element.dataset;
    return {
      placement: data.upshotPlacement,
      kind: data.upshotKind || "other",
      campaign: data.upshotCampaign,
      sequence: data.upshotSequence,
      experience: data.upshotExperience,
      label: data.upshotLabel,
      impression_id: element.__upshotImpression
    };
  }

  function watchImpressions() {
    if (!("IntersectionObserver" in window)) return;
    var timers = new Map();
    var visible = new Set();
    function start(element) {
      if (element.__upshotImpression || timers.has(element) || document.visibilityState !== "visible") return;
      timers.set(element, setTimeout(function () {
        timers.delete(element);
        element.__upshotImpression = randomId();
        var fields = placementFields(element);
        var items = element.dataset.upshotItems;
        if (items) fields.items = items.split(",").map(function (item) { return item.trim(); }).filter(Boolean);
        track("impression", fields);
      }, VISIBLE_MS));
    }
    function stop(element) {
      clearTimeout(timers.get(element));
      timers.delete(element);
    }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting && entry.intersectionRatio >= VISIBLE_RATIO) { visible.add(entry.target); start(entry.target); }
        else { visible.delete(entry.target); stop(entry.target); }
      });
    }, { threshold: [0, VISIBLE_RATIO, 1] });
    function observeAll(root) {
      if (root.matches && root.matches("[data-upshot-placement]")) observer.observe(root);
      if (root.querySelectorAll) root.querySelectorAll("[data-upshot-placement]").forEach(function (e) { observer.observe(e); });
    }
    observeAll(document);
    new MutationObserver(function (mutations) {
      mutations.forEach(function (m) { m.addedNodes.forEach(observeAll); });
    }).observe(document.documentElement, { childList: true, subtree: true });
    document.addEventListener("visibilitychange", function () {
      // A hidden tab shows nothing: the continuous second starts again when it is back.
      visible.forEach(function (element) { if (document.visibilityState === "visible") start(element); else stop(element); });
    });
  }

  function interaction(element, action, target) {
    var fields = placementFields(element);
    fields.action = action;
    var itemElement = target && target.closest ? target.closest("[data-upshot-item]") : null;
    if (itemElement && element.contains(itemElement)) fields.item = itemElement.getAttribute("data-upshot-item");
    track("interaction", fields);
  }

  function watchInteractions() {
    document.addEventListener("click", function (event) {
      var element = event.target.closest && event.target.closest("[data-upshot-placement]");
      if (!element) return;
      var discard = event.target.closest("[data-upshot-discard]");
      interaction(element, discard && element.contains(discard) ? "discard" : "click", event.target);
    }, true);
    var hoverTimers = new WeakMap();
    document.addEventListener("mouseover", function (event) {
      var element = event.target.closest && event.target.closest("[data-upshot-placement]");
      if (!element || element.__upshotHovered || hoverTimers.has(element)) return;
      hoverTimers.set(element, setTimeout(function () {
        element.__upshotHovered = true;
        interaction(element, "hover", null);
      }, HOVER_MS));
    }, true);
    document.addEventListener("mouseout", function (event) {
      var element = event.target.closest && event.target.closest("[data-upshot-placement]");
      if (!element || (event.relatedTarget && element.contains(event.relatedTarget))) return;
      clearTimeout(hoverTimers.get(element));
      hoverTimers.delete(element);
    }, true);
  }

  // The API: upshot(command, fields).
  var commands = {
    page: function (f) { if (f && f.page_type) pageType = f.page_type; track("page_view", {}); },
    identify: function (f) { profileId = f && f.profile_id; },
    productView: function (f) { track("product_view", { item: f.item }); },
    addToCart: function (f) { track("add_to_cart", { item: f.item, quantity: f.quantity, price: f.price }); },
    order: function (f) {
      track("order", { order_id: f.order_id, revenue: f.revenue, shipping: f.shipping, tax: f.tax,
        currency: f.currency, items: f.items });
    },
    assignment: function (f) { track("assignment", { experiment: f.experiment, variant: f.variant }); },
    goal: function (f) { track("goal", { goal: f.goal, value: f.value }); },
    journey: function (f) { track("journey", { journey: f.journey, action: f.action, channel: f.channel, run_id: f.run_id }); },
    consent: function (allowed) {
      consent = !!allowed;
      if (consent) { visitorId = null; visitor(); flush(false); } else { queue = []; }
    },
    flush: function () { flush(false); },
    visitorId: function (callback) { callback(visitor()); }
  };

  function call(args) {
    var command = commands[args[0]];
    if (command) command(args[1]);
    else if (window.console) console.warn("upshot: unknown command", args[0]);
  }

  var pending = (window.upshot && window.upshot.q) || [];
  window.upshot = function () { call(arguments); };
  watchImpressions();
  watchInteractions();
  track("page_view", {});
  pending.forEach(call);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(true); });
  window.addEventListener("pagehide", function () { flush(true); });
})();
