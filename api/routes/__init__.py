"""HTTP routes, one router per area; `api.app.create_app` mounts them."""
