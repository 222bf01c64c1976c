#!/usr/bin/python3
"""Feeds llama-server the same captioning requests as capforge describe: one /completion request
per image with n = N candidates (the server prefills once and copies to N slots), CONCURRENCY
requests in flight. Prints {"seconds": s, "images": n, "tokens": generated}.

usage: server_client.py PORT N N_PREDICT CONCURRENCY TEMPERATURE TOP_K TOP_P IMAGE...
"""
import base64
import concurrent.futures
import json
import sys
import time
import urllib.request

port, n, n_predict, conc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
temperature, top_k, top_p = float(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
images = sys.argv[8:]
# the chatml template of the fixture, as capforge renders it
prompt = "<|im_start|>user\n<__media__>Describe the image.<|im_end|>\n<|im_start|>assistant\n"


def one(path):
    body = {
        "prompt": {"prompt_string": prompt, "multimodal_data": [base64.b64encode(open(path, "rb").read()).decode()]},
        "n": n, "n_predict": n_predict, "temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": 0.0,
        "repeat_penalty": 1.0, "ignore_eos": True, "cache_prompt": False, "seed": 1,
    }
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    out = json.loads(urllib.request.urlopen(req, timeout=600).read())
    results = out if isinstance(out, list) else [out]
    return sum(r.get("tokens_predicted", 0) for r in results)


t0 = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(conc) as ex:
    tokens = sum(ex.map(one, images))
print(json.dumps({"seconds": time.perf_counter() - t0, "images": len(images), "tokens": tokens}))
