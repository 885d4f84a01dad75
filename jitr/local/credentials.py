"""The credentials every local client uses: the local endpoint accepts any, AWS none of these."""

LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
