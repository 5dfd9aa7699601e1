from cspdesk.cli import main

main()
