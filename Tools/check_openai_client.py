#!/usr/bin/env python3
"""The official `openai` Python client against recurrent-server (pip install openai): lists the
model, streams a completion and a chat completion, reads a plain completion and its usage, and
gets the API's error for a bad request.

Usage: python3 Tools/check_openai_client.py CHECKPOINT
"""
import os
import re
import subprocess
import sys

import openai

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    checkpoint = sys.argv[1]
    server = subprocess.Popen([os.path.join(ROOT, ".build", "release", "recurrent-server"), "--checkpoint", checkpoint,
                               "--port", "0", "--api-key", "sk-local"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+)$", server.stdout.readline().strip()).group(1))
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-local")
        models = [m.id for m in client.models.list()]
        print("models:", models)
        pieces = []
        for chunk in client.completions.create(model=models[0], prompt="ROMEO:", max_tokens=60, stream=True, seed=5):
            pieces.append(chunk.choices[0].text)
        streamed = "".join(pieces)
        print(f"streamed {len(pieces)} chunks: {streamed[:60]!r}")
        plain = client.completions.create(model=models[0], prompt="ROMEO:", max_tokens=60, seed=5)
        assert plain.choices[0].text == streamed, "a streamed completion differs from the same one unstreamed"
        assert plain.usage.completion_tokens == 60 and plain.choices[0].finish_reason == "length"
        chat = client.chat.completions.create(model=models[0], messages=[{"role": "user", "content": "Who goes there?"}],
                                              max_tokens=40, stream=True)
        content = "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
        print(f"chat: {content[:60]!r}")
        try:
            client.completions.create(model=models[0], prompt="ROMEO:", max_tokens=-5)
            sys.exit("a negative max_tokens was accepted")
        except openai.BadRequestError as error:
            print("bad request:", error.body)
        try:
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong").models.list()
            sys.exit("a wrong API key was accepted")
        except openai.AuthenticationError:
            print("wrong key refused")
        print("ok")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
