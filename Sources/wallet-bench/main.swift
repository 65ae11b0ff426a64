print("wallet-bench: not built yet")
