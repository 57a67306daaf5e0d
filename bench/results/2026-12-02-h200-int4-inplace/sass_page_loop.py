# Static SASS instruction count of the decode kernel's page loop: the innermost backward branch whose
# range holds at least 32 HMMA. Usage: python3 sass_page_loop.py SASS_DUMP [NAME_REGEX]
import re,sys,collections
txt=open(sys.argv[1]).read()
funcs=re.split(r'\n\s*Function : ',txt)
for f in funcs[1:]:
    name=f.split('\n',1)[0].strip()
    if len(sys.argv)>2 and not re.search(sys.argv[2],name): continue
    ins=[]
    for m in re.finditer(r'/\*([0-9a-f]{4,})\*/\s+([^;]*);',f):
        addr=int(m.group(1),16); t=m.group(2).strip()
        if t.startswith('@'): t=t.split(None,1)[1]
        ins.append((addr,t))
    best=None
    for i,(a,t) in enumerate(ins):
        if t.startswith('BRA'):
            mm=re.search(r'0x([0-9a-f]+)',t)
            if not mm: continue
            tgt=int(mm.group(1),16)
            if tgt<a:
                rng=[x for x in ins if tgt<=x[0]<=a]
                h=sum(1 for x in rng if x[1].startswith('HMMA'))
                if h>=32 and (best is None or len(rng)<len(best)): best=rng
    if best is None: continue
    c=collections.Counter(x[1].split()[0].split('.')[0] for x in best)
    print(name[-60:], 'loop', len(best), ' '.join(f'{k}:{v}' for k,v in c.most_common(14)))
