"""biogate's XFS4IoT side: the message envelope, end-to-end dispense tokens, a reusable service
dispatcher and the Biometric service for the ATM application.

    envelope  parse/build XFS4IoT messages, completion codes
    token     make / verify CashDispenser.Dispense end-to-end tokens
    server    XFS4IoTService: acknowledge, queue, cancel, timeouts, events (transport-agnostic)
"""
