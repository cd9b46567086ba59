
§
P"Nspiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"SQGET
remote-groupsstaff
remote-usersam"/admin/users*app.example.test