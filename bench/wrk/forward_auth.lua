-- GET /v1/forward-auth as nginx auth_request sends it: Bearer token (env
-- TOKEN) and the original method and URI, mapped by the policy's routes.
wrk.method = "GET"
wrk.path = "/v1/forward-auth"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["X-Original-Method"] = "POST"
wrk.headers["X-Original-URI"] = "/workspaces/Marketing-Production/projects/p1/import"
