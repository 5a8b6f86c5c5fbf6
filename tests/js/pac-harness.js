// Evaluates a PAC file the way a browser does, with the PAC helper functions from the
// Netscape specification (as Chromium and Firefox implement them), in Node's own JavaScript
// engine. Name resolution is a stub that resolves IP literals only, so the PAC's answers
// depend on nothing but the host name (as Hedgerow's PAC is meant to).
//
//   node pac-harness.js PAC_FILE < urls.json   ->   {"url": "PROXY …" or "DIRECT", …}
//
// Each URL's host is passed as Chromium passes it: lower case, IPv6 without brackets.
"use strict";
const fs = require("fs");
const vm = require("vm");

const pacText = fs.readFileSync(process.argv[2], "utf8");
const urls = JSON.parse(fs.readFileSync(0, "utf8"));

function ipv4(text) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

const helpers = {
  isPlainHostName: (host) => host.indexOf(".") < 0,
  dnsDomainIs: (host, domain) =>
    host.length >= domain.length && host.substring(host.length - domain.length) === domain,
  localHostOrDomainIs: (host, hostdom) =>
    host === hostdom || hostdom.lastIndexOf(host + ".", 0) === 0,
  // Resolves IP literals only: no DNS in the test, and the PAC must not need it.
  dnsResolve: (host) => (ipv4(host) !== null ? host : null),
  isResolvable: (host) => ipv4(host) !== null,
  myIpAddress: () => "10.20.1.7",
  dnsDomainLevels: (host) => host.split(".").length - 1,
  isInNet: (host, pattern, mask) => {
    const resolved = helpers.dnsResolve(host);
    if (resolved === null) return false;
    const a = ipv4(resolved), p = ipv4(pattern), m = ipv4(mask);
    if (a === null || p === null || m === null) return false;
    return ((a & m) >>> 0) === ((p & m) >>> 0);
  },
  shExpMatch: (str, shexp) => {
    const re = "^" + shexp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$";
    return new RegExp(re).test(str);
  },
  weekdayRange: () => true,
  dateRange: () => true,
  timeRange: () => true,
  alert: () => {},
};

const context = vm.createContext(Object.assign({}, helpers));
vm.runInContext(pacText, context, { filename: "proxy.pac" });
if (typeof context.FindProxyForURL !== "function") {
  throw new Error("the PAC file defines no FindProxyForURL");
}

const out = {};
for (const u of urls) {
  let host = new URL(u).hostname.toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  out[u] = context.FindProxyForURL(u, host);
}
process.stdout.write(JSON.stringify(out) + "\n");
