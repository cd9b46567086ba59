
®
P"Nspiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"ZXGET
remote-groupsadmins,staff
remote-userada"/admin/users*app.example.test