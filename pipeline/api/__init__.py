"""The model API: the Mistral client (client), where requests go and the key they carry (endpoint), when a
failed request is sent again (retry), and the pacing of requests and tokens (ratelimit)."""
