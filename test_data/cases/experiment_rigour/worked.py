# Independent worked values for test_data/cases/experiment_rigour (SPEC 5 and 9.5),
# with Python's statistics and math only.
import statistics as st, math
Z=1.959964
def Phi(x): return 0.5*math.erfc(-x/math.sqrt(2))
groups={"control":[(20,30),(0,10),(0,0),(15,25)],"b":[(40,60),(0,20),(10,0),(0,35)],"t":[(0,5),(12,0),(0,0),(0,0)]}
def lift(mv,vv,mc,vc):
    l=mv/mc-1; se=math.sqrt(vv/mc**2+mv**2*vc/mc**4); return l,se
def seq(l,se,N,T=5000,a=0.05):
    s2=se*se*N; L=math.log(1/a); rho=T*s2/(2*L+math.log(1+2*L))
    h=math.sqrt((N*s2+rho)*math.log((N*s2+rho)/(rho*a*a)))/N; return [l-h,l+h]
allx=[x for g in groups.values() for x,_ in g]; ally=[y for g in groups.values() for _,y in g]
theta=st.covariance(allx,ally)/st.variance(allx); mxall=st.mean(allx)
print("theta",theta)
adj={}; plain={}
for k,g in groups.items():
    x=[a for a,_ in g]; y=[b for _,b in g]; n=len(g)
    adj[k]=(st.mean(y)-theta*(st.mean(x)-mxall),(st.variance(y)+theta**2*st.variance(x)-2*theta*st.covariance(x,y))/n)
    plain[k]=(st.mean(y),st.variance(y)/n)
print("reduction",1-sum(v for _,v in adj.values())/sum(v for _,v in plain.values()))
ps=[]
out={}
for k in ("b","t"):
    g=groups[k]; c=groups["control"]; nv,nc=len(g),len(c)
    cv=sum(1 for _,y in g if y>0)/nv; cc=sum(1 for _,y in c if y>0)/nc
    l,se=lift(cv,cv*(1-cv)/nv,cc,cc*(1-cc)/nc); p=2*(1-Phi(abs(l)/se))
    out[k]={"cr_lift":l,"cr_lift_p_value":p,"cr_lift_ci_sequential":seq(l,se,nv+nc)}
    ps.append((k,"cr",p))
    l,se=lift(plain[k][0],plain[k][1],plain["control"][0],plain["control"][1]); p=2*(1-Phi(abs(l)/se))
    out[k].update({"rpv_lift":l,"rpv_lift_p_value":p,"rpv_lift_ci_sequential":seq(l,se,nv+nc)})
    ps.append((k,"rpv",p))
    l,se=lift(adj[k][0],adj[k][1],adj["control"][0],adj["control"][1]); p=2*(1-Phi(abs(l)/se))
    out[k].update({"rpv_lift_cuped":l,"rpv_lift_cuped_ci":[l-Z*se,l+Z*se],"rpv_lift_cuped_p_value":p})
m=len(ps); order=sorted(range(m),key=lambda i:ps[i][2]); run=0
for r,i in enumerate(order):
    run=max(run,min(1,(m-r)*ps[i][2])); k,w,_=ps[i]; out[k][f"{w}_lift_p_value_adjusted"]=run
for k,v in out.items():
    for f,x in v.items(): print(k,f,x)
# skew: 30 vs 5, equal split: chi-square on 1 df, p = erfc(sqrt(stat/2))
stat=2*(12.5**2/17.5); print("skew srm", math.erfc(math.sqrt(stat/2)))
