"""What a call costs: the price table and the one pricing function (rates), the AWS Price List
normaliser (price_list) and the activated price versions (versions). Imports storage, domain,
budgets and core.
"""
