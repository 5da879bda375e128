/*! recommender "Also Read" widget.
 *
 * One script tag, one placeholder per story:
 *
 *   <div data-also-read data-article-id="STORY-ID" data-k="5" style="min-height:16em"></div>
 *   <script src="https://recommender.example.com/widget.js" async></script>
 *
 * Options (attributes of the placeholder):
 *   data-article-id     the story's id in the index (required)
 *   data-k              how many links (1-50, default 5)
 *   data-heading        heading text (default "Also read")
 *   data-section        only stories of this section
 *   data-url-template   link to "/stories/{id}" instead of each story's url
 *   data-api            the service's address (default: where this script came from)
 *   data-static-base    read a static export (`recommender export`) from this URL instead of the API
 *   data-explain        "1": ask why each story is there and show it as the link's tooltip (title)
 *   data-relation       "1": label each link "Same day", "Follow-up" or "Background" (when both have dates)
 *   data-pinned-label   text of the mark on a story an editor pinned (default "Editor's pick"; "" for none)
 *   data-reader         an anonymous first-party id of the reader: the server assigns the A/B variant from it
 *   data-ab="per-view"  no reader id: draw one per page view (the variant may change between page views)
 *   data-events         "off": report no impressions or clicks
 *   data-events-url     where to report them (default: the API's /v1/events; a static export has none)
 *
 * The placeholder's min-height reserves the space, so the page does not jump when the list arrives. When the
 * service is down, slow (over 3 s) or has nothing related, the placeholder is hidden: never an error box, never
 * an empty heading. Styles use :where() (zero specificity), so any rule of the site's own CSS wins.
 *
 * Measuring: when at least half of the box is on screen (IntersectionObserver) the widget reports one
 * impression (the ids shown, the list's index_version and variant); each link followed is reported as a click
 * with its position, by navigator.sendBeacon (it survives the navigation). No cookie is set and nothing is kept
 * in the browser; a random id per page view ties a click to its impression.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var TIMEOUT_MS = 3000;
  var STYLE_ID = "also-read-style";
  var CSS =
    ":where(.also-read){font:inherit;margin:1.5em 0}" +
    ":where(.also-read__heading){font-size:1.1em;margin:0 0 .5em}" +
    ":where(.also-read__list){list-style:none;margin:0;padding:0}" +
    ":where(.also-read__item){margin:0 0 .5em;padding:0 0 .5em;border-bottom:1px solid rgba(0,0,0,.1)}" +
    ":where(.also-read__link){color:inherit;text-decoration:none}" +
    ":where(.also-read__link:hover,.also-read__link:focus){text-decoration:underline}" +
    ":where(.also-read__badge,.also-read__relation){font-size:.8em;opacity:.75;margin-left:.5em}";
  var RELATION_LABELS = { "same-day": "Same day", "follow-up": "Follow-up", "background": "Background" };
  var FLUSH_MS = 1000;
  var queues = {};  // events waiting to be sent, per events URL

  function injectStyle() {
    if (document.getElementById(STYLE_ID)) return;
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  function base64url(text) {
    var bytes = new TextEncoder().encode(text), binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Must match recommender.serving.export.file_stem(): safe ids as they are (but never "index", the export's
  // own index.json), others "~" + base64url(utf-8), long ones "~h" + sha256 hex (crypto.subtle: https pages and
  // localhost only).
  function fileStem(id) {
    if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,149}$/.test(id) && !/\.\./.test(id) && id.toLowerCase() !== "index") {
      return Promise.resolve(id);
    }
    var encoded = base64url(id);
    if (encoded.length <= 200) return Promise.resolve("~" + encoded);
    if (!(window.crypto && crypto.subtle)) return Promise.reject(new Error("no crypto.subtle"));
    return crypto.subtle.digest("SHA-256", new TextEncoder().encode(id)).then(function (buf) {
      return "~h" + Array.prototype.map.call(new Uint8Array(buf), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    });
  }

  // A link is written only when it resolves to http(s): a "javascript:" (or data:, vbscript:...) URL from the
  // service or an export never becomes an href. The URL parser drops tabs and newlines as the browser would.
  function safeHref(url) {
    if (!url) return null;
    try {
      var parsed = new URL(url, location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function hide(el) {
    el.hidden = true;
    el.setAttribute("data-also-read-state", "empty");
  }

  function randomId() {
    var bytes = new Uint8Array(8);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function send(url, events) {
    var body = JSON.stringify({ events: events });  // text/plain: a simple request, no CORS preflight
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return;
    if (typeof fetch === "function") {
      fetch(url, { method: "POST", body: body, mode: "cors", credentials: "omit", keepalive: true }).catch(
        function () {}
      );
    }
  }

  function flush(url) {
    var queue = queues[url];
    if (!queue || !queue.events.length) return;
    clearTimeout(queue.timer);
    var events = queue.events.splice(0, queue.events.length);
    while (events.length) send(url, events.splice(0, 50));
  }

  function report(url, event, now) {
    var queue = queues[url] || (queues[url] = { events: [], timer: null });
    queue.events.push(event);
    if (now) return flush(url);
    clearTimeout(queue.timer);
    queue.timer = setTimeout(function () { flush(url); }, FLUSH_MS);
  }

  function flushAll() {
    for (var url in queues) if (Object.prototype.hasOwnProperty.call(queues, url)) flush(url);
  }

  function measure(el, nav, links, data, eventsUrl) {
    var base = { story: el.getAttribute("data-article-id"), view: randomId() };
    if (data.index_version) base.version = String(data.index_version).slice(0, 128);
    if (data.variant) base.variant = String(data.variant).slice(0, 64);
    function event(fields) {
      var out = {};
      for (var key in base) out[key] = base[key];
      for (key in fields) out[key] = fields[key];
      return out;
    }
    var seen = false;
    function impression() {
      if (seen) return;
      seen = true;
      report(eventsUrl, event({ type: "impression", items: links.map(function (a) { return a.getAttribute("data-id"); }) }));
    }
    links.forEach(function (a, n) {
      a.addEventListener("click", function () {
        impression();  // a click means the box was seen, even if the observer had not said so yet
        report(eventsUrl, event({ type: "click", target: a.getAttribute("data-id"), position: n + 1 }), true);
      });
    });
    if (typeof IntersectionObserver !== "function") return impression();
    var observer = new IntersectionObserver(function (entries) {
      for (var i = 0; i < entries.length; i++) {
        if (entries[i].isIntersecting) {
          observer.disconnect();
          impression();
          return;
        }
      }
    }, { threshold: 0.5 });
    observer.observe(nav);
  }

  function render(el, data, k, eventsUrl) {
    var template = el.getAttribute("data-url-template");
    var href = function (item) {
      return safeHref(template ? template.replace("{id}", encodeURIComponent(item.id)) : item.url);
    };
    var items = (data && data.related ? data.related : []).filter(function (item) {
      return href(item) !== null;
    }).slice(0, k);
    if (!items.length) return hide(el);
    injectStyle();
    var nav = document.createElement("nav");
    nav.className = "also-read";
    var headingText = el.getAttribute("data-heading") || "Also read";
    nav.setAttribute("aria-label", headingText);
    var heading = document.createElement("h2");
    heading.className = "also-read__heading";
    heading.textContent = headingText;
    var list = document.createElement("ul");
    list.className = "also-read__list";
    var pinnedLabel = el.hasAttribute("data-pinned-label") ? el.getAttribute("data-pinned-label") : "Editor's pick";
    var showRelation = el.getAttribute("data-relation") === "1";
    var links = [];
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = "also-read__item";
      var a = document.createElement("a");
      a.className = "also-read__link";
      a.href = href(item);
      a.textContent = item.title || item.id;  // textContent: titles can never inject markup
      a.setAttribute("data-id", item.id);
      if (item.reason) a.title = item.reason;  // "why this?" as a tooltip
      li.appendChild(a);
      if (item.pinned) {
        li.className += " also-read__item--pinned";
        li.setAttribute("data-pinned", "true");
        if (pinnedLabel) {
          var badge = document.createElement("span");
          badge.className = "also-read__badge";
          badge.textContent = pinnedLabel;
          li.appendChild(badge);
        }
      }
      if (showRelation && RELATION_LABELS[item.relation]) {
        var relation = document.createElement("span");
        relation.className = "also-read__relation";
        relation.setAttribute("data-relation", item.relation);
        relation.textContent = RELATION_LABELS[item.relation];
        li.appendChild(relation);
      }
      list.appendChild(li);
      links.push(a);
    });
    nav.appendChild(heading);
    nav.appendChild(list);
    el.textContent = "";
    el.appendChild(nav);
    el.setAttribute("data-also-read-state", "ready");
    if (eventsUrl) measure(el, nav, links, data, eventsUrl);
  }

  function load(el) {
    var id = el.getAttribute("data-article-id");
    if (!id) return hide(el);
    var k = Math.max(1, Math.min(50, parseInt(el.getAttribute("data-k") || "5", 10) || 5));
    var staticBase = el.getAttribute("data-static-base");
    var eventsUrl = el.getAttribute("data-events-url");
    var where;
    if (staticBase) {
      where = fileStem(id).then(function (stem) {
        return staticBase.replace(/\/?$/, "/") + encodeURIComponent(stem) + ".json";
      });
    } else {
      var api = (el.getAttribute("data-api") || scriptOrigin).replace(/\/$/, "");
      var url = api + "/v1/articles/" + encodeURIComponent(id) + "/related?k=" + k;
      var section = el.getAttribute("data-section");
      if (section) url += "&section=" + encodeURIComponent(section);
      if (el.getAttribute("data-explain") === "1") url += "&explain=1";
      var reader = el.getAttribute("data-reader");
      if (!reader && el.getAttribute("data-ab") === "per-view") reader = randomId();
      if (reader) url += "&reader=" + encodeURIComponent(reader.slice(0, 128));
      where = Promise.resolve(url);
      if (!eventsUrl) eventsUrl = api + "/v1/events";
    }
    if (el.getAttribute("data-events") === "off") eventsUrl = null;
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) controller.abort(); }, TIMEOUT_MS);
    where
      .then(function (url) {
        // "no-cache": revalidate with the ETag on every page view (a 304 has no body), so a new story or an
        // editor's pin or block shows on the next page view rather than after the answer's max-age
        return fetch(url, {
          mode: "cors",
          credentials: "omit",
          cache: "no-cache",
          signal: controller ? controller.signal : undefined
        });
      })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { render(el, data, k, eventsUrl); })
      .catch(function () { hide(el); })
      .then(function () { clearTimeout(timer); });
  }

  function start() {
    var slots = document.querySelectorAll("[data-also-read]:not([data-also-read-state])");
    for (var i = 0; i < slots.length; i++) {
      slots[i].setAttribute("data-also-read-state", "loading");
      load(slots[i]);
    }
  }

  // the page is going away (tab closed, navigation): send what is queued now
  addEventListener("pagehide", flushAll);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flushAll();
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
