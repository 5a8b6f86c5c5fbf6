#!/usr/bin/env python3
"""Writes the committed seed corpora in fuzz/seeds/TARGET/ (a few small, real inputs each).

Run from anywhere: `python3 fuzz/seeds/make.py`. The files are committed; rerun it only to
change them. Inputs are built by hand from the protocols' specifications, except the TLS
ClientHellos, which are what Python's own TLS client (OpenSSL) sends.
"""

import os
import shutil
import ssl
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def join(*parts):
    """As fuzz/src/lib.rs `join`: each part but the last behind a big-endian u16 length."""
    out = b""
    for p in parts[:-1]:
        out += struct.pack(">H", len(p)) + p
    return out + parts[-1]


# --- DNS -------------------------------------------------------------------------------------

def name(n):
    out = b""
    for label in n.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def opt(payload=1232, do=False, options=b""):
    return (b"\0" + struct.pack(">HHBBH", 41, payload, 0, 0, 0x8000 if do else 0)
            + struct.pack(">H", len(options)) + options)


def ecs(address, prefix):
    data = struct.pack(">HBB", 1, prefix, 0) + bytes(address[: (prefix + 7) // 8])
    return struct.pack(">HH", 8, len(data)) + data


def query(qid, qname, qtype=1, rd=True, edns=None, cd=False):
    flags = (0x0100 if rd else 0) | (0x0010 if cd else 0)
    ar = 1 if edns is not None else 0
    msg = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, ar) + name(qname) + struct.pack(">HH", qtype, 1)
    return msg + (edns or b"")


def rr(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


SOA = name("ns.example") + name("hostmaster.example") + struct.pack(">IIIII", 1, 3600, 600, 86400, 300)


def response(qid, qname, qtype, answers=(), authorities=(), rcode=0, compress=True):
    owner = b"\xc0\x0c" if compress else name(qname)
    an = b"".join(rr(owner, t, ttl, d) for t, ttl, d in answers)
    ns = b"".join(rr(owner, t, ttl, d) for t, ttl, d in authorities)
    head = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(answers), len(authorities), 0)
    return head + name(qname) + struct.pack(">HH", qtype, 1) + an + ns


def dns():
    q_plain = query(0x1234, "www.example.com", 1)
    q_edns = query(0x2345, "Example.COM", 28, edns=opt(1232, do=True))
    q_ecs = query(0x3456, "blocked", 1, edns=opt(4096, options=ecs([10, 3, 0, 7], 24)))
    q_mac = query(0x4567, "x.y", 1, edns=opt(1232, options=struct.pack(">HH", 65001, 6) + bytes([2, 0, 0x5e, 0, 0, 7])))
    q_mx = query(0x5678, "mail.example", 15, rd=False)
    q_canary = query(0x6789, "use-application-dns.net", 1)
    q_safe = query(0x789A, "www.google.com", 1, edns=opt())
    q_cd = query(0x1111, "www.example.com", 1, edns=opt(), cd=True)
    a_rec = response(0x1234, "www.example.com", 1, answers=[(1, 300, bytes([192, 0, 2, 1])), (1, 60, bytes([192, 0, 2, 2]))])
    nx = response(0x1234, "nothing.example", 1, authorities=[(6, 900, SOA)], rcode=3)
    cname = response(0x1234, "www.example.com", 1, answers=[(5, 300, name("cdn.blocked")), (1, 300, bytes([192, 0, 2, 9]))])

    for i, q in enumerate([q_plain, q_edns, q_ecs, q_mac, q_mx, q_canary, q_cd]):
        write("dns_wire", f"query-{i}", q)
    write("dns_wire", "answer-a", a_rec)
    write("dns_wire", "answer-nxdomain", nx)
    write("dns_wire", "answer-uncompressed", response(7, "a.example", 28, answers=[(28, 60, bytes(16))], compress=False))

    # dns_fast: client selector, the upstream's answer for the query's name, the query.
    write("dns_fast", "cache-hit", join(b"\x00", a_rec, q_plain))
    write("dns_fast", "cache-hit-edns", join(b"\x01", response(0, "example.com", 28, answers=[(28, 60, bytes(15) + b"\x01")]), q_edns))
    write("dns_fast", "negative", join(b"\x02", nx, query(9, "nothing.example", 1, edns=opt())))
    write("dns_fast", "block-nxdomain", join(b"\x00", b"", query(1, "ads.blocked", 1)))
    write("dns_fast", "block-null", join(b"\x01", b"", query(2, "x.y", 28, edns=opt())))
    write("dns_fast", "block-page", join(b"\x02", b"", query(3, "xn--bcher-kva.example", 1)))
    write("dns_fast", "block-ecs", join(b"\x04", b"", q_ecs))
    write("dns_fast", "checking-disabled", join(b"\x00", a_rec, q_cd))

    # dns_request: the upstream's flags, counts and sections, then datagrams.
    def upstream(flags, an, ns, ar, sections):
        return struct.pack(">HHHH", flags, an, ns, ar) + sections

    a_sections = rr(b"\xc0\x0c", 1, 300, bytes([192, 0, 2, 1]))
    cname_sections = rr(b"\xc0\x0c", 5, 300, name("cdn.blocked")) + rr(name("cdn.blocked"), 1, 300, bytes([192, 0, 2, 9]))
    https = struct.pack(">H", 1) + b"\0" + struct.pack(">HH", 5, 4) + b"ECH!"
    https_sections = rr(b"\xc0\x0c", 65, 300, https)

    def datagrams(*ds):
        return b"".join(bytes([sel]) + struct.pack(">H", len(d)) + d for sel, d in ds)

    write("dns_request", "forward-then-hit", join(upstream(0x8180, 1, 0, 0, a_sections), datagrams((0, q_plain), (0, q_plain))))
    write("dns_request", "cname-chain", join(upstream(0x8180, 2, 0, 0, cname_sections), datagrams((1, q_plain))))
    write("dns_request", "https-ech", join(upstream(0x8180, 1, 0, 0, https_sections), datagrams((2, query(5, "www.example.com", 65, edns=opt())))))
    write("dns_request", "nxdomain", join(upstream(0x8183, 0, 1, 0, rr(b"\xc0\x0c", 6, 900, SOA)), datagrams((0, query(6, "nothing.example", 1)))))
    write("dns_request", "refused-and-canary", join(upstream(0x8180, 0, 0, 0, b""), datagrams((3, q_plain), (0, q_canary), (2, q_safe))))
    write("dns_request", "identity", join(upstream(0x8180, 1, 0, 0, a_sections), datagrams((4, q_ecs), (4, q_mac), (0, q_mac))))
    write("dns_request", "truncated-upstream", join(upstream(0x8380, 0, 0, 0, b""), datagrams((0, q_mx))))
    write("dns_request", "odd-datagrams", join(upstream(0x8180, 0, 0, 0, b""), datagrams((0, a_rec), (0, b"\x00\x01\x00"), (0, query(8, "a.example", 1)[:-1]), (0, struct.pack(">HHHHHH", 9, 0x2800, 1, 0, 0, 0) + name("a.example") + b"\0\1\0\1"))))


# --- TLS -------------------------------------------------------------------------------------

def client_hello(server_name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def tls():
    hello = client_hello("www.example.com")
    write("tls_hello", "sni", hello)
    write("tls_hello", "no-sni", client_hello(None))
    write("tls_hello", "upper-case-sni", client_hello("WWW.Example.COM"))
    # The same hello split over two records, as some clients send a big one.
    body = hello[5:]
    half = len(body) // 2
    split = hello[:3] + struct.pack(">H", half) + body[:half] + hello[:3] + struct.pack(">H", len(body) - half) + body[half:]
    write("tls_hello", "two-records", split)
    write("tls_hello", "not-tls", b"GET / HTTP/1.1\r\n\r\n")


# --- HTTP heads ------------------------------------------------------------------------------

def heads():
    write("proxy_heads", "get", b"\x08GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
    write("proxy_heads", "pipelined", b"\x03POST http://example.com/a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhelloGET http://example.com/b HTTP/1.1\r\nHost: example.com\r\n\r\n")
    write("proxy_heads", "cl-te", b"\x10POST http://example.com/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    write("proxy_heads", "cl-twice", b"\x01POST http://example.com/ HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 5\r\n\r\nabcd")
    write("proxy_heads", "chunked", b"\x20POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    write("proxy_heads", "connect", b"\x05CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01")
    write("proxy_heads", "second-is-smuggled", b"\x07GET http://example.com/ HTTP/1.1\r\n\r\nPOST http://example.com/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")


# --- names, URLs, lists, configuration -------------------------------------------------------

def names():
    for i, h in enumerate(["WWW.Example.COM.", "Bücher.example", "xn--bcher-kva.example", "[2001:DB8::1]",
                           "192.0.2.1", "ПРИМЕР.рф", "_dmarc.example.com", " a-b.example \n"]):
        write("host", f"host-{i}", h)
    for i, u in enumerate(["http://example.com/a/b.html?x=1#top", "HTTPS://User:pw@EXAMPLE.com:443/a/./c/../b%2Ehtml",
                           "http://example.com//a/../b", "example.com/path;jsessionid=1?q=%20a",
                           "http://Bücher.example/%7Euser/", "http://[::1]:8080/x", "http://0x7f.1/",
                           "http:\\\\example.com\\a/b?u=http%3A%2F%2Fx"]):
        write("url", f"url-{i}", u)


def lists():
    def lines(path, n=12):
        with open(os.path.join(ROOT, "blocklists", path), "rb") as f:
            return b"".join(f.readlines()[:n])

    # The choice byte: format = b % 4 (domains, urls, regex, phrases); kind = b / 4 % 3
    # (block, allow, illegal); bit 0x40: exact URL matching.
    write("lists", "domains", b"\x00" + lines("adult.txt"))
    write("lists", "domain-styles", b"\x04" + b"# comment\nexample.com\n*.wild.example\n0.0.0.0 a.example b.example\n"
          b"||ads.example^\naddress=/c.example/d.example/0.0.0.0\n127.0.0.1 localhost\n[Adblock Plus 2.0]\nB\xc3\xbccher.example\n")
    write("lists", "domains-illegal", b"\x08" + b"bad.example\nworse.example.\n")
    write("lists", "urls", b"\x01" + lines("adult.urls.txt"))
    write("lists", "urls-exact-illegal", b"\x49" + b"http://example.com/a/b.html\nexample.com/c?d=1\n")
    write("lists", "regex", b"\x02" + lines("malware.regex"))
    write("lists", "phrases", b"\x03" + lines("self-harm.phrases"))
    # Top bit: a DHCP lease file; low bit: dnsmasq (0) or ISC dhcpd (1).
    write("lists", "leases-dnsmasq", b"\x80" + b"1764000000 02:00:5e:00:00:07 10.20.1.7 pupil-laptop 01:02:00:5e:00:00:07\n"
          b"1764000100 02:00:5e:00:00:09 2001:db8::9 * *\n")
    write("lists", "leases-isc", b"\x81" + b"lease 10.20.1.8 {\n  starts 4 2026/11/26 08:00:00;\n"
          b"  hardware ethernet 02:00:5e:00:00:08;\n  client-hostname \"laptop-8\";\n}\n")


def config():
    with open(os.path.join(ROOT, "config", "hedgerow.toml"), "rb") as f:
        write("config", "bundled", f.read())
    write("config", "minimal", b'[server]\nstate_dir = "/tmp/hedgerow-fuzz-state"\ntimezone = "UTC"\n\n'
          b'[dns]\nlisten = ["127.0.0.1:5353"]\n\n[[dns.upstreams]]\naddress = "127.0.0.1:5300"\nprotocol = "udp"\n')


# --- the log store's batches -----------------------------------------------------------------

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def zigzag(n):
    return varint((n << 1) ^ (n >> 63))


def string(s):
    s = s.encode()
    return varint(len(s)) + s


def option(v, enc):
    return b"\0" if v is None else b"\1" + enc(v)


def store():
    t0 = 1_764_000_000_000_000_000
    strings = ["laptop-7", "pupil", "ks2", "A", "adult", "adult", "www.adult.example", "GET"]
    # Compact events: dt, front, client, device, user, group, target, qtype, outcome, action,
    # tier, category, list, rule, method, search, concern, bytes, reference.
    dns_event = (zigzag(0) + varint(0) + varint(0) + varint(1) + varint(2) + varint(3) + string("www.adult.example")
                 + varint(4) + varint(1) + varint(1) + varint(5) + varint(5) + varint(6) + varint(7)
                 + varint(0) + option(None, string) + option(None, varint) + varint(0) + option(None, varint))
    proxy_event = (zigzag(1_500_000) + varint(1) + varint(1) + varint(0) + varint(0) + varint(3)
                   + string("http://www.google.com/search?q=cats") + varint(0) + varint(0) + varint(0)
                   + varint(6) + varint(0) + varint(0) + varint(0) + varint(8)
                   + option("cats", string) + option(1, varint) + varint(5120) + option(0xBEEF, varint))
    raw = (zigzag(t0) + varint(len(strings)) + b"".join(string(s) for s in strings)
           + varint(2) + varint(0) + bytes([10, 3, 0, 7]) + varint(1) + bytes(15) + b"\x01"
           + varint(2) + dns_event + proxy_event)
    write("store_batch", "raw-batch", b"\x01" + raw)

    # The stored value: format 2, the raw size, and an LZ4 block of literals only.
    def lz4_literals(data):
        n = len(data)
        token = min(n, 15) << 4
        out = bytes([token])
        if n >= 15:
            rest = n - 15
            while rest >= 255:
                out += b"\xff"
                rest -= 255
            out += bytes([rest])
        return out + data

    write("store_batch", "stored-batch", b"\x00" + b"\x02" + struct.pack("<I", len(raw)) + lz4_literals(raw))
    # Format 1: a postcard list of whole events.
    wire_event = (zigzag(t0) + varint(0) + varint(0) + bytes([192, 0, 2, 1]) + option("laptop-7", string)
                  + option(None, string) + option("ks2", string) + string("example.com") + option("AAAA", string)
                  + varint(0) + varint(0) + varint(6) + option(None, string) + option(None, string)
                  + option(None, string) + option(None, string) + option(None, string) + option(None, varint)
                  + varint(0) + option(None, varint))
    write("store_batch", "format-1", b"\x00" + b"\x01" + varint(1) + wire_event)


if __name__ == "__main__":
    for t in ["dns_wire", "dns_fast", "dns_request", "tls_hello", "proxy_heads", "host", "url", "lists", "config", "store_batch"]:
        shutil.rmtree(os.path.join(HERE, t), ignore_errors=True)
    dns()
    tls()
    heads()
    names()
    lists()
    config()
    store()
