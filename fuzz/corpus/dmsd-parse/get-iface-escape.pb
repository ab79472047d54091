I

interfaces)
	interface
name../../etc]/state/mtu
state
mtu