#!/usr/bin/env python3
"""The crate's import graph between its top-level modules (src/<module>), tests left
out: each module's imports, the circles among them, and whether anything below the
commands (cmd/) imports the command line (cli). Exits 1 on a circle or such an import."""
import glob
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
edges={}
for f in glob.glob('src/**/*.rs',recursive=True):
    rel=os.path.relpath(f,'src')
    top=rel.split('/')[0].replace('.rs','')
    if top in ('main','lib'): continue
    text=open(f).read()
    m_=re.search(r'#\[cfg\(test\)\]\s*mod [a-z_]+ \{',text); i=m_.start() if m_ else -1
    if rel.endswith('tests.rs'): continue
    body=text if i<0 else text[:i]
    for m in re.findall(r'crate::([a-z_]+)',body):
        if m!=top and m!='VERSION': edges.setdefault(top,set()).add(m)
for k,v in sorted(edges.items()): print(f"{k:10} -> {', '.join(sorted(v))}")
res=set()
def dfs(start,node,path):
    for n in edges.get(node,()):
        if n==start: res.add(tuple(sorted(path)))
        elif n not in path and len(path)<8: dfs(start,n,path+[n])
for s in list(edges): dfs(s,s,[s])
print("circles:", sorted(res) or "none")
upward = [k for k, v in edges.items() if "cli" in v and k != "cmd"]
print("below cmd/ importing cli:", upward or "none")
sys.exit(1 if res or upward else 0)
