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
 *
 * The placeholder's min-height reserves the space, so the page does not jump when the list arrives. When the
 * service is down, slow (over 3 s) or has nothing related, the placeholder is hidden: never an error box, never
 * an empty heading. Styles use :where() (zero specificity), so any rule of the site's own CSS wins.
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
    ":where(.also-read__link:hover,.also-read__link:focus){text-decoration:underline}";

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

  function render(el, data, k) {
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
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = "also-read__item";
      var a = document.createElement("a");
      a.className = "also-read__link";
      a.href = href(item);
      a.textContent = item.title || item.id;  // textContent: titles can never inject markup
      li.appendChild(a);
      list.appendChild(li);
    });
    nav.appendChild(heading);
    nav.appendChild(list);
    el.textContent = "";
    el.appendChild(nav);
    el.setAttribute("data-also-read-state", "ready");
  }

  function load(el) {
    var id = el.getAttribute("data-article-id");
    if (!id) return hide(el);
    var k = Math.max(1, Math.min(50, parseInt(el.getAttribute("data-k") || "5", 10) || 5));
    var staticBase = el.getAttribute("data-static-base");
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
      where = Promise.resolve(url);
    }
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) controller.abort(); }, TIMEOUT_MS);
    where
      .then(function (url) {
        return fetch(url, { mode: "cors", credentials: "omit", signal: controller ? controller.signal : undefined });
      })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { render(el, data, k); })
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

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
