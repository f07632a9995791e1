"""A local HTTPS sign-in authority for the tests: msal talks to it as it would to Entra ID.

It serves OpenID discovery, the v2.0 token endpoint (client secret, certificate assertion,
federated assertion, device code, refresh token), the device-code endpoint, and an App
Service style managed-identity endpoint, and issues JWT access tokens with chosen claims.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

GRAPH = "https://graph.microsoft.com"
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(claims: dict) -> str:
    header = {"alg": "none", "typ": "JWT"}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


@dataclass
class Authority:
    url: str = ""
    ca_path: str = ""
    secret: str = "s3cr3t-Value-!@#-do-not-print"
    certificate_pem: bytes = b""  # the app's registered certificate
    federated_token: str = ""
    identity_header: str = "mi-header-secret"
    roles: list[str] = field(default_factory=lambda: ["UserAuthenticationMethod.ReadWrite.All"])
    scopes: str = "UserAuthenticationMethod.ReadWrite.All"
    lifetime: int = 3600  # what the token response says
    valid_for: int = 3600  # what the token's exp says (shorter: it expires "early")
    issued: list[dict] = field(default_factory=list)  # claims of every token issued
    assertions: list[dict] = field(default_factory=list)  # headers of client assertions received

    def access_token(self, **claims) -> str:
        now = int(time.time())
        claims = {"aud": GRAPH, "tid": TENANT, "iat": now, "nbf": now, "exp": now + self.valid_for, **claims}
        self.issued.append(claims)
        return make_jwt(claims)

    def token_response(self, delegated: bool = False) -> dict:
        if delegated:
            token = self.access_token(scp=self.scopes, upn="admin@contoso.com", appid=CLIENT_ID)
            info = {"uid": "admin-oid", "utid": TENANT}
            id_token = make_jwt({
                "iss": f"{self.url}/{TENANT}/v2.0", "aud": CLIENT_ID, "tid": TENANT, "oid": "admin-oid",
                "preferred_username": "admin@contoso.com", "iat": int(time.time()), "exp": int(time.time()) + 3600,
            })
            return {"token_type": "Bearer", "expires_in": self.lifetime, "access_token": token, "scope": self.scopes,
                    "refresh_token": "refresh-" + uuid.uuid4().hex, "id_token": id_token,
                    "client_info": b64url(json.dumps(info).encode())}
        token = self.access_token(roles=self.roles, appid=CLIENT_ID)
        return {"token_type": "Bearer", "expires_in": self.lifetime, "access_token": token}

    def check_client(self, form: dict) -> str | None:
        """None if the client proved who it is, else the OAuth error description."""
        if form.get("client_id") != CLIENT_ID:
            return "AADSTS700016: application not found"
        if "client_secret" in form:
            return None if form["client_secret"] == self.secret else "AADSTS7000215: invalid client secret"
        assertion = form.get("client_assertion")
        if not assertion:
            return "AADSTS7000218: no client credential"
        if self.federated_token and assertion == self.federated_token:
            return None
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(unb64url(header_b64))
        self.assertions.append(header)
        certificate = x509.load_pem_x509_certificate(self.certificate_pem)
        thumbprint = b64url(certificate.fingerprint(hashes.SHA1()))
        thumbprint256 = b64url(certificate.fingerprint(hashes.SHA256()))
        sent = {str(header.get(name, "")).rstrip("=") for name in ("x5t", "x5t#S256")}
        if not sent & {thumbprint, thumbprint256}:
            return "AADSTS700027: certificate thumbprint doesn't match a registered key"
        try:
            certificate.public_key().verify(
                unb64url(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return "AADSTS700027: client assertion signature is invalid"
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    authority: Authority

    def log_message(self, format, *args):
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        a = self.authority
        url = urlsplit(self.path)
        if url.path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = url.path.split("/")[1]
            base = f"{a.url}/{tenant}"
            return self._reply(200, {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            })
        if url.path == "/msi/token":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if self.headers.get("X-IDENTITY-HEADER") != a.identity_header:
                return self._reply(400, {"statusCode": 400, "message": "missing identity header"})
            claims = {"roles": a.roles, "appid": query.get("client_id", "system-assigned-identity")}
            token = a.access_token(aud=query.get("resource", ""), **claims)
            return self._reply(200, {"access_token": token, "expires_on": str(int(time.time()) + a.lifetime),
                                     "resource": query.get("resource"), "token_type": "Bearer"})
        return self._reply(404, {"error": "not_found"})

    def do_POST(self):
        a = self.authority
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        path = urlsplit(self.path).path
        if path.endswith("/oauth2/v2.0/devicecode"):
            return self._reply(200, {
                "device_code": "device-code-1", "user_code": "BULK-PHONE", "verification_uri": "https://microsoft.com/devicelogin",
                "expires_in": 900, "interval": 1,
                "message": "To sign in, use a web browser to open https://microsoft.com/devicelogin and enter the code BULK-PHONE.",
            })
        if path.endswith("/oauth2/v2.0/token"):
            grant = form.get("grant_type")
            if grant == "client_credentials":
                problem = a.check_client(form)
                if problem:
                    return self._reply(401, {"error": "invalid_client", "error_description": problem})
                return self._reply(200, a.token_response())
            if grant in ("urn:ietf:params:oauth:grant-type:device_code", "refresh_token"):
                return self._reply(200, a.token_response(delegated=True))
            return self._reply(400, {"error": "unsupported_grant_type", "error_description": str(grant)})
        return self._reply(404, {"error": "not_found"})


@contextlib.contextmanager
def serve_authority(tmp_path):
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    app_key = trustme.CA().issue_cert("bulkphone-app", key_type=trustme.KeyType.RSA)  # Entra app keys are RSA
    authority = Authority(ca_path=str(tmp_path / "authority-ca.pem"))
    ca.cert_pem.write_to_path(authority.ca_path)
    authority.certificate_pem = app_key.cert_chain_pems[0].bytes()
    (tmp_path / "app.pem").write_bytes(app_key.private_key_pem.bytes() + app_key.cert_chain_pems[0].bytes())

    handler = type("Handler", (_Handler,), {"authority": authority})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    authority.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield authority
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
