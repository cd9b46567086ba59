
]

	
::1"NLHEAD
remote-usera,b"/s?q=%20x&q=%20x&empty=&flag*[::ffff:127.0.0.1]