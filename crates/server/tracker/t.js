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
  var RETRIES_MAX = 6; // tries per batch, the first included
  var RETRY_FIRST_MS = 1000; // then doubling...
  var RETRY_MAX_MS = 60000; // ...up to a minute
  var RETRY_AFTER_MAX_MS = 600000; // a collector's Retry-After is honoured up to ten minutes
  var WAITING_MAX = 100; // events kept before consent is decided (the oldest; later ones dropped)

  var consentRequired = script.getAttribute("data-consent") === "required";
  var consent = consentRequired ? null : true; // null: not yet decided
  var pageType = script.getAttribute("data-page-type") || undefined;
  var queue = []; // events not yet in a batch
  var retrying = []; // batches waiting for their retry: { events, tries, delay, epoch, timer }
  var epoch = 0; // bumped when consent is withdrawn: answers to older sends schedule nothing
  var timer = null;
  var warnedFull = false;
  var visitorId = null;
  var profileId = null;
  var encoder = window.TextEncoder ? new TextEncoder() : null;

  function warn(message) {
    if (window.console && console.warn) console.warn(message);
  }

  function randomId() {
    var cryptography = window.crypto;
    if (cryptography && cryptography.randomUUID) return cryptography.randomUUID();
    var bytes = new Uint8Array(16);
    if (cryptography && cryptography.getRandomValues) cryptography.getRandomValues(bytes);
    else {
      // Old browsers and some embedded webviews have no window.crypto. Math.random is no
      // CSPRNG: these ids are unique enough for a visitor's events, not unguessable.
      for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  // The batch limit is the body's size on the wire: UTF-8 bytes, not string length.
  function byteLength(text) {
    if (encoder) return encoder.encode(text).length;
    try { return unescape(encodeURIComponent(text)).length; } catch (e) { return text.length * 3; }
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
    if (consent !== true && queue.length >= WAITING_MAX) {
      // Nothing leaves before consent, so the queue must not grow without end.
      if (!warnedFull) warn("upshot: " + WAITING_MAX + " events are waiting for consent; later events are dropped until upshot('consent', true)");
      warnedFull = true;
      return;
    }
    queue.push(event);
    if (queue.length >= BATCH_EVENTS_MAX) flush(false);
    else if (!timer) timer = setTimeout(function () { timer = null; flush(false); }, FLUSH_MS);
  }

  // Takes the next batch off the queue: at most BATCH_EVENTS_MAX events and
  // BATCH_BYTES_MAX bytes of NDJSON, each stamped with the visitor.
  function nextBatch() {
    var events = [], bytes = 0, id = visitor();
    while (queue.length && events.length < BATCH_EVENTS_MAX) {
      var event = queue[0];
      event.visitor_id = event.visitor_id || id;
      // Measured with a sent_at: every send stamps one of the same length (13 digits).
      event.sent_at = Date.now();
      var size = byteLength(JSON.stringify(event)) + 1;
      if (events.length && bytes + size > BATCH_BYTES_MAX) break;
      queue.shift();
      events.push(event);
      bytes += size;
    }
    return { events: events, tries: 0, delay: RETRY_FIRST_MS, epoch: epoch, timer: null };
  }

  // The body for one send. sent_at is the clock at this very send, a retry's too: the
  // collector takes ts as received_at - (sent_at - ts), so a stale sent_at would move
  // the events later by the time the batch waited.
  function body(batch) {
    var sentAt = Date.now();
    return batch.events.map(function (event) {
      event.sent_at = sentAt;
      return JSON.stringify(event);
    }).join("\n") + "\n";
  }

  function flush(leaving) {
    if (consent !== true) return;
    if (timer) { clearTimeout(timer); timer = null; }
    if (leaving) {
      // Retry timers will not fire once the page is gone: the waiting batches go now.
      var waiting = retrying;
      retrying = [];
      waiting.forEach(function (batch) { clearTimeout(batch.timer); leave(batch); });
    }
    while (queue.length) {
      var batch = nextBatch();
      if (leaving) leave(batch);
      else { send(batch); break; } // one request at a time; the rest follow its answer
    }
  }

  // The page is going away: a beacon is delivered after we are gone. Every batch is at
  // most BATCH_BYTES_MAX, under what a beacon may carry; one the browser refuses (its
  // quota of beacons in flight is full) tries fetch(keepalive) instead.
  function leave(batch) {
    if (navigator.sendBeacon) {
      try {
        if (navigator.sendBeacon(ENDPOINT, new Blob([body(batch)], { type: "text/plain" }))) return;
      } catch (e) { /* fall back to fetch */ }
    }
    send(batch);
  }

  function send(batch) {
    batch.tries += 1;
    fetch(ENDPOINT, { method: "POST", body: body(batch), keepalive: true, headers: { "Content-Type": "text/plain" } })
      .then(function (response) {
        if (batch.epoch !== epoch) return; // consent was withdrawn meanwhile
        if (response.ok) { if (queue.length) flush(false); return; }
        // Busy (429, 503), unwell (5xx) or timed out reading us (408): try again later.
        // Any other refusal would be refused again: drop the batch, and say so.
        var status = response.status, why = "HTTP " + status;
        if (status === 408 || status === 429 || status >= 500) retry(batch, why, retryAfter(response));
        else drop(batch, ": the collector refused them (" + why + ", not retried)");
      }, function () {
        if (batch.epoch === epoch) retry(batch, "network error", null);
      });
  }

  // Retry-After in milliseconds, when the collector sent one we may read (cross-origin,
  // only if it exposes the header); null otherwise.
  function retryAfter(response) {
    var value = response.headers.get("Retry-After");
    if (!value) return null;
    var ms = /^\s*\d+\s*$/.test(value) ? Number(value) * 1000 : Date.parse(value) - Date.now();
    return isFinite(ms) ? Math.min(Math.max(ms, 0), RETRY_AFTER_MAX_MS) : null;
  }

  // Back off, then try the same batch again (event ids make a resend harmless).
  function retry(batch, why, waitMs) {
    if (batch.tries >= RETRIES_MAX) { drop(batch, " after " + batch.tries + " tries (last: " + why + ")"); return; }
    var wait = waitMs === null ? batch.delay : waitMs;
    batch.delay = Math.min(batch.delay * 2, RETRY_MAX_MS);
    retrying.push(batch);
    batch.timer = setTimeout(function () {
      retrying.splice(retrying.indexOf(batch), 1);
      send(batch);
    }, wait);
  }

  // A batch given up on is said so on the console: silent loss is hard to debug.
  function drop(batch, why) {
    var count = batch.events.length;
    warn("upshot: dropped " + count + " event" + (count === 1 ? "" : "s") + why);
  }

  // Withdrawn consent: nothing queued or waiting for a retry may leave any more.
  function forget() {
    queue = [];
    if (timer) { clearTimeout(timer); timer = null; }
    retrying.forEach(function (batch) { clearTimeout(batch.timer); });
    retrying = [];
    epoch += 1;
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
    function placements(root, each) {
      if (root.matches && root.matches("[data-upshot-placement]")) each(root);
      if (root.querySelectorAll) root.querySelectorAll("[data-upshot-placement]").forEach(each);
    }
    function observeAll(root) {
      placements(root, function (element) { observer.observe(element); });
    }
    // A placement that left the page (a closed pop-up) is let go, so that neither the
    // observer nor our timers keep the detached element alive. One only moved stays.
    function forgetRemoved(root) {
      if (document.contains(root)) return;
      placements(root, function (element) {
        observer.unobserve(element);
        stop(element);
        visible.delete(element);
      });
    }
    observeAll(document);
    new MutationObserver(function (mutations) {
      mutations.forEach(function (m) {
        m.removedNodes.forEach(forgetRemoved);
        m.addedNodes.forEach(observeAll);
      });
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

  // Where the visitor came from (SPEC section 9.1): the referrer and the landing URL's
  // utm_* parameters go with the first page view of a page load only. Each is cut to
  // 512 code points, as the collector takes no longer value.
  var landing = (function () {
    var cut = function (text) { return Array.from(text).slice(0, 512).join(""); };
    var fields = {};
    if (document.referrer) fields.referrer = cut(document.referrer);
    var query = new URLSearchParams(location.search);
    ["utm_source", "utm_medium", "utm_campaign"].forEach(function (name) {
      if (query.has(name)) fields[name] = cut(query.get(name));
    });
    return fields;
  })();

  function pageView() {
    track("page_view", landing || {});
    landing = null;
  }

  // The API: upshot(command, fields).
  var commands = {
    page: function (f) { if (f && f.page_type) pageType = f.page_type; pageView(); },
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
      if (consent) { visitorId = null; visitor(); flush(false); } else forget();
    },
    flush: function () { flush(false); },
    visitorId: function (callback) { callback(visitor()); }
  };

  // One failing command (a throwing visitorId callback, bad fields) is logged and
  // does not stop the commands after it, nor throw into the shop's own code.
  function call(args) {
    try {
      if (Object.prototype.hasOwnProperty.call(commands, args[0])) commands[args[0]](args[1]);
      else warn("upshot: unknown command " + args[0]);
    } catch (error) {
      if (window.console && console.error) console.error("upshot: the command " + args[0] + " failed:", error);
    }
  }

  var pending = (window.upshot && window.upshot.q) || [];
  window.upshot = function () { call(arguments); };
  watchImpressions();
  watchInteractions();
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(true); });
  window.addEventListener("pagehide", function () { flush(true); });
  pageView();
  pending.forEach(call);
})();
