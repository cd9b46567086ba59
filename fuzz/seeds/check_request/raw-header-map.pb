
‰
P"Nspiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"53GET"/*hj&

remote-userÿql

remote-userb