"""A fake Bitrix24 portal and OAuth server (filled in with the Bitrix24 pipeline)."""

from __future__ import annotations

from pathlib import Path

from leadbridge_local.fakes.base import FakeClock, FakeCrmBase, FakeRequest, FakeResponse, json_response


class FakeBitrix24(FakeCrmBase):
    def __init__(self, clock: FakeClock | None = None, data_dir: Path | None = None) -> None:
        super().__init__(clock)
        self.data_dir = data_dir

    def handle(self, request: FakeRequest) -> FakeResponse:
        return json_response(404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"})
