"""What `server.protocol` relies on in uvicorn and httptools: a change there fails here, by name.

The protocol subclasses uvicorn's httptools protocol (pyproject.toml pins uvicorn's minor
version): it replaces `data_received` and `send_400_response`, extends the parser callbacks,
reads the request cycle's state, and swaps `app` around `on_headers_complete`.
"""

import inspect

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from server.protocol import GuardedHttpToolsProtocol


def test_the_methods_the_protocol_overrides_or_calls_still_exist() -> None:
    for name in (
        "data_received",
        "send_400_response",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_message_complete",
        "connection_made",
        "connection_lost",
        "_unset_keepalive_if_required",
        "_should_upgrade",
        "handle_websocket_upgrade",
        "_unsupported_upgrade_warning",
    ):
        assert callable(getattr(HttpToolsProtocol, name, None)), name
    assert issubclass(GuardedHttpToolsProtocol, HttpToolsProtocol)


def test_uvicorns_data_received_is_the_one_the_protocol_replaces() -> None:
    """Ours is uvicorn's with refusals of its own: the original must still do only this."""
    source = inspect.getsource(HttpToolsProtocol.data_received)
    for step in (
        "self._unset_keepalive_if_required()",
        "self.parser.feed_data(data)",
        "except httptools.HttpParserError:",
        "except httptools.HttpParserUpgrade:",
    ):
        assert step in source, step


def test_a_request_runs_the_protocols_app_read_when_its_headers_complete() -> None:
    """The over-capacity answer is given by swapping `app` for the length of that call."""
    source = inspect.getsource(HttpToolsProtocol.on_headers_complete)
    assert "app = self.app" in source
    assert "self._start_asgi_task(self.cycle, app)" in source


def test_the_request_cycle_keeps_the_state_a_refusal_reads() -> None:
    cycle_init = inspect.getsource(RequestResponseCycle.__init__)
    for attribute in ("self.disconnected", "self.response_started", "self.response_complete"):
        assert attribute in cycle_init, attribute
    assert "message_event" in inspect.signature(RequestResponseCycle.__init__).parameters


def test_httptools_calls_a_protocols_chunk_callback() -> None:
    calls: list[str] = []

    class Counting:
        def on_chunk_header(self) -> None:
            calls.append("chunk")

    parser = httptools.HttpRequestParser(Counting())
    parser.feed_data(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n"
    )

    assert calls == ["chunk", "chunk", "chunk"]
