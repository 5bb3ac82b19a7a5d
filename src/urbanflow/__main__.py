from urbanflow.cli import main

main()
