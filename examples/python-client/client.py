#!/usr/bin/env python3
"""End-to-end check of the wsmschat gRPC API from Python, using only the .proto files.

The stubs are generated at run time from ../../proto/wsmschat/v1/*.proto with grpc_tools.protoc,
so nothing here depends on the server's source. The scenario plays a visitor (unary Publish and
server-streaming Subscribe, as a browser would) and a backend service holding an API key (the
bidirectional Chat stream), and checks what each side receives. A second scenario sends files
both ways: the visitor uploads a PNG over HTTP (`POST /uploads`, as the widget does), the service
downloads it with DownloadAttachment and answers with a PDF uploaded by UploadAttachment, which
the visitor fetches by its signed link.

Usage: python client.py --api-key <secret> [--server 127.0.0.1:8080] [--site-key demo]
"""

import argparse
import glob
import importlib
import json
import os
import queue
import shutil
import struct
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

import grpc
import grpc_tools
from grpc_tools import protoc

TIMEOUT = 10.0  # seconds, for every unary call and every wait on a stream
STREAM_DEADLINE = 60.0  # seconds, backstop deadline of each stream as a whole
GRACE = 1.0  # seconds to keep listening for duplicates after a replay looks complete

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


# --------------------------------------------------------------------------- stub generation


def generate_stubs():
    """Compile wsmschat/v1/*.proto into a temp dir and import the modules from there."""
    proto_files = sorted(glob.glob(os.path.join(PROTO_ROOT, "wsmschat", "v1", "*.proto")))
    if not proto_files:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}/wsmschat/v1")
    out_dir = tempfile.mkdtemp(prefix="wsmschat-py-stubs-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    # Pass files relative to the include root so the generated imports read `wsmschat.v1.xxx_pb2`.
    rel = [os.path.relpath(p, PROTO_ROOT) for p in proto_files]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *rel,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    sys.path.insert(0, out_dir)
    mods = {}
    for name in ("events_pb2", "chat_pb2", "chat_pb2_grpc", "session_pb2", "session_pb2_grpc"):
        mods[name] = importlib.import_module(f"wsmschat.v1.{name}")
    return out_dir, mods


# --------------------------------------------------------------------------- stream helpers


class StreamReader:
    """Reads a response stream on a thread so that every wait can have a timeout."""

    def __init__(self, call, label):
        self.call = call
        self.label = label
        self.q = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"reader-{label}", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for resp in self.call:
                self.q.put(("event", resp.event))
            self.q.put(("end", None))
        except grpc.RpcError as e:
            self.q.put(("error", e))
        except Exception as e:  # pragma: no cover - unexpected client-side failure
            self.q.put(("error", e))

    def next_event(self, deadline):
        """The next ServerEvent before `deadline` (monotonic), or None on timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            kind, value = self.q.get(timeout=remaining)
        except queue.Empty:
            return None
        if kind == "event":
            return value
        if kind == "end":
            raise AssertionError(f"{self.label}: stream ended by the server")
        code = value.code() if isinstance(value, grpc.RpcError) else None
        details = value.details() if isinstance(value, grpc.RpcError) else repr(value)
        raise AssertionError(f"{self.label}: stream failed: {code} {details}")

    def wait_for(self, predicate, what, timeout=TIMEOUT):
        """Skip events until one satisfies `predicate`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            ev = self.next_event(deadline)
            if ev is None:
                raise AssertionError(
                    f"{self.label}: no {what} within {timeout:.0f}s (skipped: {skipped or 'nothing'})"
                )
            if predicate(ev):
                return ev
            skipped.append(ev.WhichOneof("event"))

    def close(self):
        self.call.cancel()
        self.thread.join(timeout=TIMEOUT)


class ChatStream:
    """The bidirectional Chat stream: a queue feeds the request iterator."""

    _END = object()

    def __init__(self, stub, chat_pb2, metadata, first_request):
        self.requests = queue.Queue()
        self.requests.put(first_request)
        call = stub.Chat(self._iter(), metadata=metadata, timeout=STREAM_DEADLINE)
        self.reader = StreamReader(call, "Chat")

    def _iter(self):
        while True:
            item = self.requests.get()
            if item is self._END:
                return
            yield item

    def send(self, request):
        self.requests.put(request)

    def close(self):
        self.requests.put(self._END)  # half-close
        self.reader.close()


# --------------------------------------------------------------------------- checks


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, requires=()):
        missing = [r for r in requires if r is None]
        if missing:
            self.failed += 1
            print(f"FAIL {name}: skipped, an earlier check it depends on failed", flush=True)
            return None
        try:
            detail, result = fn()
        except grpc.RpcError as e:
            self.failed += 1
            print(f"FAIL {name}: gRPC {e.code()} {e.details()}", flush=True)
            return None
        except Exception as e:
            self.failed += 1
            print(f"FAIL {name}: {e}", flush=True)
            return None
        self.passed += 1
        print(f"ok   {name}" + (f": {detail}" if detail else ""), flush=True)
        return result if result is not None else True


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


def png_rgb(width, height):
    """An 8-bit RGB PNG of a gradient, built with the standard library alone (zlib + struct)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None
        for x in range(width):
            rows += bytes((x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 128))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def http_upload(server, token, name, body, conversation=""):
    """`POST /uploads` as a browser does: (status, JSON body)."""
    query = {"name": name}
    if conversation:
        query["conversation"] = conversation
    req = urllib.request.Request(
        f"http://{server}/uploads?{urllib.parse.urlencode(query)}",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"message": raw.decode("utf-8", "replace")}


def http_get(server, path):
    """GET a path of the server (a signed file link needs no auth): (status, headers, bytes)."""
    try:
        with urllib.request.urlopen(f"http://{server}{path}", timeout=TIMEOUT) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def download(chat, chat_pb, metadata, attachment_id):
    """DownloadAttachment: (the Attachment of the first response, all the chunks joined)."""
    first = None
    data = bytearray()
    for i, resp in enumerate(
        chat.DownloadAttachment(
            chat_pb.DownloadAttachmentRequest(attachment_id=attachment_id),
            metadata=metadata,
            timeout=TIMEOUT,
        )
    ):
        if i == 0:
            expect(resp.HasField("attachment"), "first DownloadAttachment response without attachment")
            first = resp.attachment
        else:
            expect(not resp.HasField("attachment"), f"response {i} carries an attachment again")
        data += resp.chunk
    expect(first is not None, "DownloadAttachment sent nothing")
    return first, bytes(data)


def scenario(channel, api_key, site_key, m, server):
    ev_pb = m["events_pb2"]
    chat_pb = m["chat_pb2"]
    session_pb = m["session_pb2"]
    sessions = m["session_pb2_grpc"].SessionServiceStub(channel)
    chat = m["chat_pb2_grpc"].ChatServiceStub(channel)
    svc_md = bearer(api_key)
    checks = Checks()
    streams = []
    state = {}

    try:
        # 1. Visitor session (native client: no Origin header).
        def start_session():
            resp = sessions.StartVisitorSession(
                session_pb.StartVisitorSessionRequest(site_key=site_key, name="Py Visitor"),
                timeout=TIMEOUT,
            )
            expect(resp.visitor_token, "empty visitor_token")
            expect(resp.visitor_id, "empty visitor_id")
            expect("Order" in resp.site.topics, f"topic Order not offered: {list(resp.site.topics)}")
            return f"visitor {resp.visitor_id}", resp.visitor_token

        visitor_token = checks.run("visitor session (SessionService/StartVisitorSession)", start_session)
        vis_md = bearer(visitor_token) if visitor_token else None

        # 2. Service opens the Chat stream with the inbox subscription.
        def open_chat():
            first = chat_pb.ChatRequest(subscribe=chat_pb.Subscription(inbox=True))
            stream = ChatStream(chat, chat_pb, svc_md, first)
            streams.append(stream)
            ev = stream.reader.wait_for(lambda e: e.WhichOneof("event") == "ready", "ready event")
            return f"stream {ev.ready.stream_id}, heartbeat {ev.ready.heartbeat_interval_ms} ms", stream

        svc = checks.run("service Chat stream ready (inbox)", open_chat)

        # 3. Visitor publishes the first message of a new conversation.
        visitor_msg_id = str(uuid.uuid4())
        visitor_text = "Where is my order?"

        def visitor_send():
            return chat.Publish(
                chat_pb.PublishRequest(
                    event=ev_pb.ClientEvent(
                        request_id="v1",
                        send_message=ev_pb.SendMessage(
                            topic="Order", client_msg_id=visitor_msg_id, text=visitor_text
                        ),
                    )
                ),
                metadata=vis_md,
                timeout=TIMEOUT,
            ).ack

        def publish():
            ack = visitor_send()
            expect(ack.conversation_id, "ack without conversation_id")
            expect(ack.seq >= 1, f"ack seq {ack.seq} < 1")
            expect(ack.client_msg_id == visitor_msg_id, f"ack client_msg_id {ack.client_msg_id!r}")
            expect(not ack.duplicate, "first send acked as duplicate")
            expect(ack.request_id == "v1", f"ack request_id {ack.request_id!r}, want 'v1'")
            return f"conversation {ack.conversation_id} seq {ack.seq}", ack

        ack1 = checks.run("visitor Publish send_message", publish, requires=(visitor_token,))

        def publish_again():
            ack = visitor_send()
            expect(
                ack.conversation_id == ack1.conversation_id,
                f"retry went to conversation {ack.conversation_id}, want {ack1.conversation_id}",
            )
            expect(ack.seq == ack1.seq, f"retry seq {ack.seq}, want {ack1.seq}")
            expect(ack.duplicate, "retry not flagged duplicate")
            return f"seq {ack.seq} duplicate={ack.duplicate}", ack

        checks.run("visitor Publish retry is idempotent", publish_again, requires=(ack1,))

        # 4. The service sees the visitor's message live, then answers on the Chat stream.
        def service_receives():
            ev = svc.reader.wait_for(
                lambda e: e.WhichOneof("event") == "message"
                and e.message.conversation_id == ack1.conversation_id
                and e.message.text == visitor_text,
                "message event for the visitor's message",
            )
            msg = ev.message
            expect(msg.seq == ack1.seq, f"message seq {msg.seq}, want {ack1.seq}")
            expect(
                msg.author_kind == ev_pb.AUTHOR_KIND_VISITOR,
                f"author_kind {ev_pb.AuthorKind.Name(msg.author_kind)}",
            )
            return f"seq {msg.seq} from {ev_pb.AuthorKind.Name(msg.author_kind)}", msg

        got = checks.run("service receives the message on Chat", service_receives, requires=(svc, ack1))

        reply_msg_id = str(uuid.uuid4())
        reply_text = "It ships today."

        def service_reply():
            svc.send(
                chat_pb.ChatRequest(
                    event=ev_pb.ClientEvent(
                        request_id="r1",
                        send_message=ev_pb.SendMessage(
                            conversation_id=ack1.conversation_id,
                            client_msg_id=reply_msg_id,
                            text=reply_text,
                        ),
                    )
                )
            )

            def answer(e):
                kind = e.WhichOneof("event")
                return (kind == "ack" and e.ack.request_id == "r1") or (
                    kind == "error" and e.error.request_id == "r1"
                )

            ev = svc.reader.wait_for(answer, "ack for request r1")
            if ev.WhichOneof("event") == "error":
                raise AssertionError(f"EventError code {ev.error.code}: {ev.error.message}")
            ack = ev.ack
            expect(ack.conversation_id == ack1.conversation_id, f"ack conversation {ack.conversation_id}")
            expect(ack.seq > ack1.seq, f"reply seq {ack.seq} not after {ack1.seq}")
            expect(ack.client_msg_id == reply_msg_id, f"ack client_msg_id {ack.client_msg_id!r}")
            return f"seq {ack.seq}", ack

        ack2 = checks.run("service replies on Chat, gets ack r1", service_reply, requires=(got,))

        # 5. Visitor resubscribes from seq 0 and gets both messages replayed, once each, in order.
        def replay():
            call = chat.Subscribe(
                chat_pb.SubscribeRequest(
                    subscription=chat_pb.Subscription(
                        cursors=[ev_pb.ConversationCursor(conversation_id=ack1.conversation_id, after_seq=0)]
                    )
                ),
                metadata=vis_md,
                timeout=STREAM_DEADLINE,
            )
            reader = StreamReader(call, "Subscribe")
            streams.append(reader)
            reader.wait_for(lambda e: e.WhichOneof("event") == "ready", "ready event")
            msgs = []
            wanted = {ack1.seq, ack2.seq}
            deadline = time.monotonic() + TIMEOUT
            while True:
                ev = reader.next_event(deadline)
                if ev is None:
                    break
                if ev.WhichOneof("event") == "message" and ev.message.conversation_id == ack1.conversation_id:
                    msgs.append(ev.message)
                    if wanted <= {x.seq for x in msgs}:
                        # Everything expected is here; listen a little longer for duplicates.
                        deadline = min(deadline, time.monotonic() + GRACE)
            seqs = [x.seq for x in msgs]
            expect(wanted <= set(seqs), f"replay incomplete: got seqs {seqs}, want {sorted(wanted)}")
            expect(len(seqs) == len(set(seqs)), f"duplicate delivery: seqs {seqs}")
            expect(seqs == sorted(seqs), f"out of order: seqs {seqs}")
            by_seq = {x.seq: x for x in msgs}
            v, s = by_seq[ack1.seq], by_seq[ack2.seq]
            expect(v.text == visitor_text, f"seq {v.seq} text {v.text!r}")
            expect(v.author_kind == ev_pb.AUTHOR_KIND_VISITOR, f"seq {v.seq} {ev_pb.AuthorKind.Name(v.author_kind)}")
            expect(v.client_msg_id == visitor_msg_id, f"seq {v.seq} client_msg_id {v.client_msg_id!r}")
            expect(s.text == reply_text, f"seq {s.seq} text {s.text!r}")
            expect(
                s.author_kind == ev_pb.AUTHOR_KIND_SERVICE,
                f"reply author_kind {ev_pb.AuthorKind.Name(s.author_kind)}, want AUTHOR_KIND_SERVICE",
            )
            expect(s.client_msg_id == reply_msg_id, f"seq {s.seq} client_msg_id {s.client_msg_id!r}")
            return f"seqs {seqs} (reply by {s.author_name or '?'})", msgs

        checks.run("visitor Subscribe replays both messages once, in order", replay, requires=(ack2, vis_md))

        # 6. A bad token is refused.
        def bad_token():
            bad = bearer("wk_not-a-real-key")
            codes = []
            try:
                chat.Publish(
                    chat_pb.PublishRequest(
                        event=ev_pb.ClientEvent(
                            send_message=ev_pb.SendMessage(topic="Order", client_msg_id=str(uuid.uuid4()), text="x")
                        )
                    ),
                    metadata=bad,
                    timeout=TIMEOUT,
                )
                raise AssertionError("Publish with a bad token succeeded")
            except grpc.RpcError as e:
                codes.append(("Publish", e.code()))
            call = chat.Subscribe(chat_pb.SubscribeRequest(), metadata=bad, timeout=TIMEOUT)
            try:
                for _ in call:
                    raise AssertionError("Subscribe with a bad token delivered an event")
                raise AssertionError("Subscribe with a bad token ended without error")
            except grpc.RpcError as e:
                codes.append(("Subscribe", e.code()))
            finally:
                call.cancel()
            wrong = [f"{n}: {c}" for n, c in codes if c != grpc.StatusCode.UNAUTHENTICATED]
            expect(not wrong, f"want UNAUTHENTICATED, got {wrong}")
            return "Publish and Subscribe -> UNAUTHENTICATED", True

        checks.run("bad token is UNAUTHENTICATED", bad_token)

        attachments_scenario(
            checks, m, chat, server, svc, vis_md, visitor_token, svc_md, ack1, streams
        )
    finally:
        for s in streams:
            s.close()

    return checks


def attachments_scenario(checks, m, chat, server, svc, vis_md, visitor_token, svc_md, ack1, streams):
    """Files both ways in the conversation of `ack1`, on the streams the first scenario opened."""
    ev_pb = m["events_pb2"]
    chat_pb = m["chat_pb2"]
    conv = ack1.conversation_id if ack1 else None
    png = png_rgb(64, 32)
    png_name = "screen shot (1).png"  # a name that needs URL encoding
    pdf = b"%PDF-1.4\n" + b"".join(b"%% line %05d of a pretend document\n" % i for i in range(2000))
    pdf_name = "invoice-1234.pdf"
    pdf_chunk = 16 * 1024

    # The visitor's live stream, open before anything is sent.
    def visitor_live():
        call = chat.Subscribe(
            chat_pb.SubscribeRequest(subscription=chat_pb.Subscription()),
            metadata=vis_md,
            timeout=STREAM_DEADLINE,
        )
        reader = StreamReader(call, "Subscribe(live)")
        streams.append(reader)
        reader.wait_for(lambda e: e.WhichOneof("event") == "ready", "ready event")
        return "ready", reader

    live = checks.run("visitor opens a live Subscribe for the files", visitor_live, requires=(vis_md,))

    # 1. The visitor uploads a PNG over HTTP (no conversation: visitors may leave it empty).
    def visitor_upload():
        status, body = http_upload(server, visitor_token, png_name, png)
        expect(status == 201, f"POST /uploads: HTTP {status} {body}")
        expect(body.get("id"), f"no id in {body}")
        expect(body.get("name") == png_name, f"name {body.get('name')!r}, want {png_name!r}")
        expect(body.get("contentType") == "image/png", f"contentType {body.get('contentType')!r}")
        expect(body.get("size") == len(png), f"size {body.get('size')}, want {len(png)}")
        expect((body.get("width"), body.get("height")) == (64, 32), f"{body.get('width')}x{body.get('height')}")
        expect(body.get("hasThumbnail") is True, "hasThumbnail is not true")
        expect(body.get("url", "").startswith("/files/"), f"url {body.get('url')!r}")
        expect(body.get("thumbnailUrl", "").startswith("/files/"), f"thumbnailUrl {body.get('thumbnailUrl')!r}")
        expect(body.get("urlsExpireAt", 0) > time.time() * 1000, f"urlsExpireAt {body.get('urlsExpireAt')}")
        return f"{body['id']} image/png 64x32, {len(png)} bytes", body

    up = checks.run("visitor uploads a PNG (HTTP POST /uploads)", visitor_upload, requires=(visitor_token,))

    def visitor_upload_html():
        status, body = http_upload(server, visitor_token, "page.html", b"<!doctype html><html><script>1</script>")
        expect(status == 415, f"HTML upload: HTTP {status} {body}, want 415")
        expect(body.get("message"), f"no message in {body}")
        return f"415: {body['message']}", True

    checks.run("visitor's HTML upload is refused (415)", visitor_upload_html, requires=(visitor_token,))

    caption = "Here is a screenshot of the error"
    caption_id = str(uuid.uuid4())

    def visitor_send_file():
        ack = chat.Publish(
            chat_pb.PublishRequest(
                event=ev_pb.ClientEvent(
                    request_id="v-file",
                    send_message=ev_pb.SendMessage(
                        conversation_id=conv,
                        client_msg_id=caption_id,
                        text=caption,
                        attachment_ids=[up["id"]],
                    ),
                )
            ),
            metadata=vis_md,
            timeout=TIMEOUT,
        ).ack
        expect(ack.conversation_id == conv, f"ack conversation {ack.conversation_id}, want {conv}")
        expect(ack.seq > ack1.seq, f"seq {ack.seq} not after {ack1.seq}")
        return f"seq {ack.seq}", ack

    vack = checks.run("visitor Publish with attachment_ids and a caption", visitor_send_file, requires=(up, conv))

    # 2. The service sees it on its Chat stream and downloads the file.
    def service_sees_png():
        ev = svc.reader.wait_for(
            lambda e: e.WhichOneof("event") == "message"
            and e.message.conversation_id == conv
            and e.message.client_msg_id == caption_id,
            "message event with the visitor's file",
        )
        msg = ev.message
        expect(msg.seq == vack.seq, f"seq {msg.seq}, want {vack.seq}")
        expect(msg.text == caption, f"text {msg.text!r}")
        expect(len(msg.attachments) == 1, f"{len(msg.attachments)} attachments, want 1")
        a = msg.attachments[0]
        expect(a.id == up["id"], f"attachment id {a.id}, want {up['id']}")
        expect(a.name == png_name, f"name {a.name!r}")
        expect(a.content_type == "image/png", f"content_type {a.content_type!r}")
        expect((a.width, a.height) == (64, 32), f"{a.width}x{a.height}, want 64x32")
        expect(a.has_thumbnail, "has_thumbnail false")
        expect(a.size == len(png), f"size {a.size}, want {len(png)}")
        expect(a.url.startswith("/files/"), f"url {a.url!r}")
        expect(not a.deleted, "deleted")
        return f"seq {msg.seq}: {a.name} {a.content_type} {a.width}x{a.height}", a

    seen = checks.run("service receives the file on Chat", service_sees_png, requires=(svc, vack))

    def service_history():
        resp = chat.GetHistory(
            chat_pb.GetHistoryRequest(conversation_id=conv), metadata=svc_md, timeout=TIMEOUT
        )
        msg = next((x for x in resp.messages if x.seq == vack.seq), None)
        expect(msg is not None, f"seq {vack.seq} not in history {[x.seq for x in resp.messages]}")
        expect([a.id for a in msg.attachments] == [up["id"]], f"history attachments {msg.attachments}")
        expect(msg.attachments[0].content_type == "image/png", "history content_type")
        return f"seq {msg.seq} with {msg.attachments[0].name}", True

    checks.run("service GetHistory carries the attachment", service_history, requires=(vack,))

    def service_download():
        a, data = download(chat, chat_pb, svc_md, seen.id)
        expect(a.id == seen.id, f"attachment {a.id}")
        expect(a.content_type == "image/png", f"content_type {a.content_type!r}")
        expect(data == png, f"{len(data)} bytes differ from the {len(png)} uploaded")
        tdata = bytearray()
        for resp in chat.DownloadAttachment(
            chat_pb.DownloadAttachmentRequest(attachment_id=seen.id, thumbnail=True),
            metadata=svc_md,
            timeout=TIMEOUT,
        ):
            tdata += resp.chunk
        expect(len(tdata) > 0, "empty thumbnail")
        expect(tdata[:3] == b"\xff\xd8\xff" or tdata[:8] == png[:8], f"thumbnail starts {bytes(tdata[:8])!r}")
        return f"{len(data)} bytes identical; thumbnail {len(tdata)} bytes", True

    checks.run("service DownloadAttachment returns the same bytes", service_download, requires=(seen,))

    def png_link_inline():
        status, headers, data = http_get(server, seen.url)
        expect(status == 200, f"GET {seen.url}: HTTP {status}")
        expect(data == png, f"{len(data)} bytes differ")
        expect(headers.get("Content-Type", "").startswith("image/png"), f"Content-Type {headers.get('Content-Type')}")
        cd = headers.get("Content-Disposition", "")
        expect(not cd.lower().startswith("attachment"), f"an image is served inline, got {cd!r}")
        return f"image/png inline, {len(data)} bytes", True

    checks.run("the PNG's signed link serves it inline", png_link_inline, requires=(seen,))

    # 3. The service answers with a PDF uploaded over gRPC in several chunks.
    def service_upload_needs_conversation():
        try:
            chat.UploadAttachment(
                iter([chat_pb.UploadAttachmentRequest(metadata=chat_pb.UploadMetadata(name="x.pdf", size=len(pdf)))]),
                metadata=svc_md,
                timeout=TIMEOUT,
            )
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{e.code()} {e.details()}")
            return f"{e.code().name}: {e.details()}", True
        raise AssertionError("a service's upload without conversation_id succeeded")

    checks.run("service UploadAttachment without conversation_id is refused", service_upload_needs_conversation)

    def service_upload():
        parts = [pdf[i : i + pdf_chunk] for i in range(0, len(pdf), pdf_chunk)]
        expect(len(parts) >= 3, f"only {len(parts)} chunks")

        def requests():
            yield chat_pb.UploadAttachmentRequest(
                metadata=chat_pb.UploadMetadata(name=pdf_name, conversation_id=conv, size=len(pdf))
            )
            for p in parts:
                yield chat_pb.UploadAttachmentRequest(chunk=p)

        a = chat.UploadAttachment(requests(), metadata=svc_md, timeout=TIMEOUT).attachment
        expect(a.id, "no attachment id")
        expect(a.name == pdf_name, f"name {a.name!r}")
        expect(a.content_type == "application/pdf", f"content_type {a.content_type!r}")
        expect(a.size == len(pdf), f"size {a.size}, want {len(pdf)}")
        expect((a.width, a.height, a.has_thumbnail) == (0, 0, False), f"{a.width}x{a.height} thumb={a.has_thumbnail}")
        return f"{a.id} application/pdf, {len(pdf)} bytes in {len(parts)} chunks", a

    pdf_up = checks.run("service uploads a PDF (UploadAttachment, chunked)", service_upload, requires=(conv,))

    reply_id = str(uuid.uuid4())

    def service_send_file():
        svc.send(
            chat_pb.ChatRequest(
                event=ev_pb.ClientEvent(
                    request_id="r-file",
                    send_message=ev_pb.SendMessage(
                        conversation_id=conv,
                        client_msg_id=reply_id,
                        text="Your invoice",
                        attachment_ids=[pdf_up.id],
                    ),
                )
            )
        )
        ev = svc.reader.wait_for(
            lambda e: e.WhichOneof("event") in ("ack", "error")
            and getattr(e, e.WhichOneof("event")).request_id == "r-file",
            "ack for request r-file",
        )
        if ev.WhichOneof("event") == "error":
            raise AssertionError(f"EventError code {ev.error.code}: {ev.error.message}")
        expect(ev.ack.client_msg_id == reply_id, f"ack client_msg_id {ev.ack.client_msg_id!r}")
        return f"seq {ev.ack.seq}", ev.ack

    sack = checks.run("service sends the PDF on Chat, gets ack", service_send_file, requires=(pdf_up, svc))

    def visitor_receives_pdf():
        ev = live.wait_for(
            lambda e: e.WhichOneof("event") == "message" and e.message.client_msg_id == reply_id,
            "message event with the service's file",
        )
        msg = ev.message
        expect(msg.seq == sack.seq, f"seq {msg.seq}, want {sack.seq}")
        expect(msg.author_kind == ev_pb.AUTHOR_KIND_SERVICE, ev_pb.AuthorKind.Name(msg.author_kind))
        expect(len(msg.attachments) == 1, f"{len(msg.attachments)} attachments")
        a = msg.attachments[0]
        expect(a.id == pdf_up.id and a.content_type == "application/pdf", f"{a.id} {a.content_type}")
        expect(a.url.startswith("/files/"), f"url {a.url!r}")
        return f"seq {msg.seq}: {a.name}", a

    vpdf = checks.run("visitor's Subscribe receives the PDF", visitor_receives_pdf, requires=(live, sack))

    def visitor_fetches_pdf():
        status, headers, data = http_get(server, vpdf.url)
        expect(status == 200, f"GET {vpdf.url}: HTTP {status}")
        expect(data == pdf, f"{len(data)} bytes differ from the {len(pdf)} uploaded")
        cd = headers.get("Content-Disposition", "")
        expect(cd.lower().startswith("attachment"), f"Content-Disposition {cd!r}")
        expect(headers.get("X-Content-Type-Options") == "nosniff", "no nosniff")
        tampered = vpdf.url.replace("s=", "s=0", 1)
        status2, _, _ = http_get(server, tampered)
        expect(status2 in (403, 404), f"a tampered signature: HTTP {status2}")
        return f"{len(data)} bytes identical, {cd}; tampered link -> {status2}", True

    checks.run("visitor GETs the PDF by its signed link", visitor_fetches_pdf, requires=(vpdf,))

    def list_files():
        resp = chat.ListAttachments(
            chat_pb.ListAttachmentsRequest(conversation_id=conv), metadata=vis_md, timeout=TIMEOUT
        )
        ids = [f.attachment.id for f in resp.files]
        expect(ids[:2] == [pdf_up.id, up["id"]], f"ListAttachments ids {ids}, want newest first")
        return f"{len(ids)} files, newest first", True

    checks.run("visitor ListAttachments: both files, newest first", list_files, requires=(vpdf, seen))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="127.0.0.1:8080", help="host:port of wsmschat (default %(default)s)")
    ap.add_argument(
        "--api-key",
        default=os.environ.get("WSMSCHAT_API_KEY"),
        help="API key with scope chat (default: $WSMSCHAT_API_KEY)",
    )
    ap.add_argument("--site-key", default="demo", help="site key of the visitor's site (default %(default)s)")
    args = ap.parse_args()
    if not args.api_key:
        ap.error("an API key is needed: --api-key or WSMSCHAT_API_KEY")

    stub_dir, mods = generate_stubs()
    try:
        with grpc.insecure_channel(args.server) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
            except grpc.FutureTimeoutError:
                print(f"FAIL cannot connect to {args.server} within {TIMEOUT:.0f}s", flush=True)
                print("0 passed, 1 failed", flush=True)
                return 1
            checks = scenario(channel, args.api_key, args.site_key, mods, args.server)
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)

    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
