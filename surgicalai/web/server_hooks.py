"""aiohttp hooks on trame's server: the access token (off loopback) and a read-only scene summary
(``/api/scene``) that tests and scripts use to check what the server holds."""
from __future__ import annotations

from aiohttp import web

from surgicalai.web.security import TOKEN_COOKIE, TOKEN_PARAM, token_matches

REFUSED = ("SurgicalAI web: an access token is required. Open the address printed by `surgicalai web` "
           "at start (it ends in ?token=...).")


def token_middleware(token: str | None):
    @web.middleware
    async def require_token(request: web.Request, handler):
        given = request.query.get(TOKEN_PARAM) or request.cookies.get(TOKEN_COOKIE)
        if not token_matches(given, token):
            return web.Response(status=403, text=REFUSED)
        response = await handler(request)
        if token and request.query.get(TOKEN_PARAM) and isinstance(response, web.StreamResponse) \
                and not isinstance(response, web.WebSocketResponse) and not response.prepared:
            # the page's own requests (scripts, the websocket) then carry it as a cookie
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response

    return require_token


def scene_summary(scene) -> dict:
    nodes = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        entry = {"id": node.GetID(), "class": node.GetClassName(), "name": node.GetName()}
        if node.IsA("vtkMRMLSegmentationNode"):
            seg = node.GetSegmentation()
            entry["segments"] = [seg.GetNthSegment(k).GetName() for k in range(seg.GetNumberOfSegments())]
        elif node.IsA("vtkMRMLSequenceNode"):
            entry["items"] = node.GetNumberOfDataNodes()
        nodes.append(entry)
    return {"nodes": nodes}


def install_hooks(server, scene, token: str | None) -> None:
    async def summary(_request):
        return web.json_response(scene_summary(scene))

    def bind(wslink_server):
        app = wslink_server.app
        app.middlewares.append(token_middleware(token))
        app.router.add_get("/api/scene", summary)

    server.controller.on_server_bind.add(bind)
