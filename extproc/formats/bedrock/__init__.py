"""AWS Bedrock Runtime, provider side only: no client speaks Bedrock's API.

- `converse_request` (ChatRequest -> Converse body; what Converse cannot carry is its `UNSUPPORTED`
  table, dropped and named or refused per the provider's `unsupported` policy), `converse_answer`
  (Converse answer -> ChatResponse), `converse_stream` (ConverseStream event-stream bytes ->
  canonical events), `invoke` (Claude's Messages API on InvokeModel, and its stream as Anthropic
  SSE), `errors` (Bedrock's error names -> the gateway's kinds), `paths` (`/model/{id}/...`), and
  `wire` (the two ProviderFormat objects).

Choices made here:
- Canonical input tokens include the cache reads and writes Converse counts apart (as for Anthropic).
- Thinking and top_k go in `additionalModelRequestFields` for Claude (model ids naming
  `anthropic.`), top_k as `inferenceConfig.topK` for Nova; for another family they are named as
  dropped (or refused). With thinking on, temperature and top_k are dropped and top_p raised to
  0.95, as the Anthropic API wants.
- temperature and topP are clamped to Converse's 0-1.
- Every system message is folded into the one `system` prompt, in order.
- A history with tool calls and no tools is sent with the called tools declared again (without a
  schema): Converse refuses toolUse blocks without a toolConfig.
- Redacted reasoning: Bedrock's `redactedContent` is base64 of Anthropic's redacted data; the
  canonical model carries Anthropic's data, so a redacted block moves between the two unchanged.
- A tool Bedrock runs itself (`toolUse.type: server_tool_use`) and its result are not the client's
  to call: they are left out of the answer.
- Converse answers carry no id or model name: the id is made up, the model left empty.
- Canonical requests carry no cache marks: a cachePoint cannot be rendered (the client's
  `cache_control` is named as dropped); an Anthropic client's own body on InvokeModel keeps them.
"""
