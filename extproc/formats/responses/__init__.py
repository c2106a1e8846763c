"""The OpenAI Responses API (`POST /v1/responses`) <-> the canonical model.

Client side: the API Codex, the OpenAI Agents SDK and `client.responses.*` speak. Provider
side: what the gateway speaks to a server that has only this API (kind openai-responses), and
how a passed-through Responses answer or stream is read for its usage.

Documented choices (where the Responses API and the canonical model do not line up):

* `instructions` is the first system message; `developer` and `system` messages are system
  messages. Consecutive assistant-side input items (assistant messages, reasoning, function
  calls) make one assistant turn; each function_call_output is one tool message.
* `namespace` tools are flattened to `<namespace>__<name>` functions (a long name keeps its
  start and a hash) and their calls go back to the client as namespace + name.
* Hosted tools, items the canonical model has no place for, files and images given by
  OpenAI `file_id`, `tool_choice.allowed_tools` and OpenAI-only knobs are `ApiFeature`s: an
  OpenAI provider gets them with the client's bytes; any other drops and names them
  (`x-gateway-dropped-features`) or refuses them, per its `unsupported` policy. `store: true`,
  `previous_response_id`, `conversation`, stored prompts, `background` and `item_reference`
  need state only OpenAI keeps: any other provider refuses them (400 naming the field).
  OpenAI's reasoning `encrypted_content` is kept for OpenAI and dropped (named) elsewhere.
* Reasoning from Anthropic and Gemini comes back to the client as reasoning items whose
  `encrypted_content` carries the thinking and its signature in the gateway's own form
  (`reasoning.py`), so the next turn gives the provider its thinking back. The summary shows
  the thinking text only when the client asked for `reasoning.summary`, as OpenAI does.
* `reasoning.effort` is the canonical reasoning_effort (Anthropic thinking budgets, Gemini
  thinkingConfig, as for Chat Completions); `text.format` is the response format;
  `max_output_tokens` is max_tokens.
* One answer per request: a provider's other choices are left out. The answer's status is
  `incomplete` (max_output_tokens or content_filter) when the provider cut it, else `completed`.
* Errors are OpenAI's error JSON with `param`; inside a stream an `error` event and
  `response.failed`, then the stream ends.
"""
