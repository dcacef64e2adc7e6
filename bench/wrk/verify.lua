-- POST /v1/tokens/verify (RFC 7662 introspection) of a token (env TOKEN).
wrk.method = "POST"
wrk.path = "/v1/tokens/verify"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token":"' .. os.getenv("TOKEN") .. '"}'
