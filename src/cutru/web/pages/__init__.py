"""The pages of each role: one router per module, each route a WebRoute."""
