"""The HTTP API: deployed units served over Ray Serve (`Endpoint` specs, `platform apply`;
`platform serve --api` for local development).

| module | job |
| --- | --- |
| `config.py` | `EndpointConfig`: what an ingress replica is built with (pure; no Ray, no FastAPI). |
| `errors.py` | `ApiError` and the one JSON error shape. |
| `openapi.py` | The OpenAPI document, generated from the served units' input and output schemas (pure). |
| `service.py` | `RunService`: the run operations against the deployment (runs through the `Router`, the run store, the control plane). |
| `api.py` | The FastAPI application: routes, auth, body limit, per-unit concurrency, error handlers. |
| `ingress.py` | The Ray Serve deployment hosting it. |
| `deploy.py` | Deploying, checking and removing endpoints on a cluster. |

Routes live in `api.py` under `/v1`; later protocols (event streams, A2A) are more routes on the
same `RunService`."""
