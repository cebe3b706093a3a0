"""The `Context` a handler receives (TorchServe's ts.context.Context): model properties
fixed at load time, and per-batch request ids, request headers and the response status,
content type and headers a handler sets for each request. No I/O here."""

from typing import Dict, Optional, Tuple


class RequestProcessor:
    """Request headers and the response status/headers of one request of a batch.
    Request headers hold the HTTP headers (name -> value) and, for each parameter,
    name -> {"content-type": ...}, as TorchServe does."""

    def __init__(self, request_header: dict):
        self._status_code = 200
        self._reason_phrase = None
        self._response_header: Dict[str, str] = {}
        self._request_header = request_header

    def get_request_property(self, key: str):
        if key in self._request_header:
            return self._request_header[key]
        lower = key.lower()  # HTTP header names are case-insensitive
        for k, v in self._request_header.items():
            if isinstance(k, str) and k.lower() == lower:
                return v
        return None

    def get_request_properties(self) -> dict:
        return self._request_header

    def report_status(self, code, reason_phrase=None) -> None:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999:
            raise ValueError("response status must be an int from 100 to 999, got %r" % (code,))
        self._status_code = code
        self._reason_phrase = reason_phrase

    def get_response_status_code(self) -> int:
        return self._status_code

    def get_response_status_phrase(self) -> Optional[str]:
        return self._reason_phrase

    def add_response_property(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("response header name must be a non-empty string, got %r" % (key,))
        if any(c in key for c in "\r\n:") or any(c in str(value) for c in "\r\n"):
            raise ValueError("response header %r: name and value must not contain CR, LF (or ':' in the name)" % key)
        self._response_header[key] = str(value)

    def get_response_headers(self) -> dict:
        return self._response_header

    def get_response_header(self, key: str) -> Optional[str]:
        return self._response_header.get(key)


class Context:
    """What a handler knows about its model and the current batch."""

    def __init__(
        self,
        model_name,
        model_dir,
        manifest,
        batch_size,
        gpu,
        server_version,
        limit_max_image_pixels=True,
        metrics=None,
        model_yaml_config=None,
    ):
        self.model_name = model_name
        self.manifest = manifest
        self._system_properties = {
            "model_dir": model_dir,
            "gpu_id": gpu,
            "batch_size": batch_size,
            "server_name": "wick",
            "server_version": server_version,
            "limit_max_image_pixels": limit_max_image_pixels,
        }
        self.request_ids = None
        self._request_processor = None
        self.metrics = metrics
        self.model_yaml_config = model_yaml_config if model_yaml_config is not None else {}
        self.cl_socket = None  # the connection, for send_intermediate_predict_response

    @property
    def system_properties(self):
        return self._system_properties

    @property
    def request_processor(self):
        return self._request_processor

    @request_processor.setter
    def request_processor(self, request_processor):
        self._request_processor = request_processor

    def _proc(self, idx: int) -> RequestProcessor:
        if self._request_processor is None:
            raise RuntimeError("there is no batch being handled (request data exists only inside handle())")
        try:
            return self._request_processor[idx]
        except (IndexError, TypeError):
            raise IndexError(
                "request index %r is out of range: the batch has %d requests"
                % (idx, len(self._request_processor))
            ) from None

    def get_request_id(self, idx: int = 0) -> Optional[str]:
        if self.request_ids is None:
            return None
        return self.request_ids.get(idx)

    def get_request_header(self, idx: int, key: str) -> Optional[str]:
        return self._proc(idx).get_request_property(key)

    def get_all_request_header(self, idx: int) -> Dict[str, str]:
        return self._proc(idx).get_request_properties()

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.set_response_header(idx, "content-type", value)

    def get_response_content_type(self, idx: int) -> Optional[str]:
        return self.get_response_headers(idx).get("content-type")

    def get_response_status(self, idx: int) -> Tuple[int, str]:
        p = self._proc(idx)
        return p.get_response_status_code(), p.get_response_status_phrase()

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0):
        self._proc(idx).report_status(code, reason_phrase=phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        for idx in range(len(self._request_processor or ())):
            self._proc(idx).report_status(code, reason_phrase=phrase)

    def get_response_headers(self, idx: int) -> Dict[str, str]:
        return self._proc(idx).get_response_headers()

    def set_response_header(self, idx, key, value):
        self._proc(idx).add_response_property(key, value)
