"""``surgicalai web``: start the browser face (trame-slicer) on a data folder."""
from __future__ import annotations

import os
import time
from pathlib import Path

MAX_PORT = 65535
HELP = "serve the planning panels (case, segmentation, endoscopy) to browsers; the sample CT is loaded"


def add_arguments(parser) -> None:
    parser.add_argument("--data", default=None,
                        help="the only folder clients may browse, upload to and save in "
                             "(default: ./surgicalai-data, created if missing)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default loopback; any other needs the printed token)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-upload-mb", type=float, default=512.0, help="largest accepted upload (MB)")
    parser.add_argument("--no-sample", action="store_true", help="start with an empty scene")


def run(args) -> int:
    started = time.perf_counter()
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from SurgicalAICore.errors import InputError

    from surgicalai.web.security import DataRoot, is_loopback, new_token

    if not 0 < args.port <= MAX_PORT:
        raise InputError(f"Port {args.port} is not between 1 and 65535.")
    folder = Path(args.data) if args.data else Path.cwd() / "surgicalai-data"
    if args.data is None:
        folder.mkdir(exist_ok=True)
    data = DataRoot.of(folder, int(args.max_upload_mb * 2**20))
    token = None if is_loopback(args.host) else new_token()

    from surgicalai.web.app import SurgicalAIWeb

    app = SurgicalAIWeb(data, token=token, load_sample=not args.no_sample)
    url = f"http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"SurgicalAI web: data folder {data.root}", flush=True)
    if token:
        print(f"SurgicalAI web: listening on {args.host}; every client needs the token: {url}", flush=True)
    app.server.controller.on_server_ready.add(
        lambda **_: print(f"SurgicalAI web: ready in {time.perf_counter() - started:.1f} s at {url}", flush=True))
    app.server.start(host=args.host, port=args.port, open_browser=False, timeout=0, show_connection_info=False,
                     disable_logging=True)
    return 0
