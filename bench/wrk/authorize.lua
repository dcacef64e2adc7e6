-- POST /v1/authorize with a token (env TOKEN) for project.import in
-- Marketing-Production: the sidecar's main decision path.
wrk.method = "POST"
wrk.path = "/v1/authorize"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token":"' .. os.getenv("TOKEN") .. '","action":"project.import","workspace":"Marketing-Production"}'
