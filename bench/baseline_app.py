"""The baseline: a bare FastAPI app with one route, served with the generated web's uvicorn options.

Run with the generated project's interpreter (so FastAPI, uvicorn, uvloop and httptools are the
same versions) and PORT in the environment. It configures no logging and logs no access lines.
"""

import os

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


if __name__ == "__main__":
    # The options of the generated project's web.build_config, loop and http left on "auto"
    # as there (uvloop and httptools, both installed by uvicorn[standard]).
    config = uvicorn.Config(
        app,
        host="0.0.0.0",  # noqa: S104  # the generated web binds all interfaces too
        port=int(os.environ["PORT"]),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="*",
        timeout_graceful_shutdown=20,
        timeout_keep_alive=5,
        lifespan="on",
    )
    uvicorn.Server(config).run()
