"""What a Bedrock call is, as pure values and rules: parsed usage, invocation log records and the
rules that bound them, the JSON decoder, scopes and attribution (who is charged, what is only a
claim), and the IAM policy documents the stack writes. No AWS calls. Imports only core.
"""
