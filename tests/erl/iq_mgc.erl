%% A real MGC (Erlang/OTP megaco) for imsagw's interop tests. It waits for imsagw's
%% ServiceChange and answers it with version 3, then plays a scenario:
%%   register: prints what it decoded from the ServiceChange and exits 0;
%%   calls:    sends Add (T1 $, TCP/MSRP), Add (T2 into the same context), Modify T2 (Remote
%%             a=setup:passive, so the MG connects out), Add with an unsupported medium
%%             (expects 515), a raw Add sent twice with one transaction ID (expects the
%%             identical cached reply), and Subtract of T1 and T2, printing "OK <step> ..."
%%             or "FAIL <step> ..." for each; exits 0 only if all passed.
%%   annexy:   the seed's flow for a real data path: Add T1 (access), Add T2 (core), Modify T2
%%             (connect out to UE-Y at 198.18.200.50:2855), Modify T1 (accept UE-X from
%%             198.18.100.7, tcpc/est armed); prints "T1 <ip> <port>", waits for the Notify
%%             of step 24 ("OK notify tcpc/est"), then for a line "subtract" on standard
%%             input, and prints "STATS <term> os=<n> or=<n> chkr=.. chks=.. r2xxr=.. r2xxs=.."
%%             (octets and MSRP counts) for both from the Subtract.
%%   annexy6:  annexy with UE-X on IPv6: T1's Local asks for `c=IN IP6 $` (the access realm
%%             is dual-stack), Modify T1 accepts UE-X from 2001:db8:1:100::7; UE-Y stays on
%%             IPv4 in the core. Prints "T1 <ip> <port>" with T1's IPv6 address.
%%   restarted: for a restarted MGC: prints the ServiceChange's method (an MG that had
%%             registered before comes back with Disconnected), then runs `bulk`.
%%   bulk:     sets up N calls (Add T1, Add T2 into its context, each TCP/MSRP), checks the
%%             MG holds them with AuditValue, then sends Context = * { Subtract = * } (what an
%%             ALG sends after its own restart) and prints "OK clearall <terminations>".
%% Over UDP by default; TRANSPORT `tcp` listens for the MG's TCP connection (TPKT, H.248.1
%% D.2) instead.
%% Without a ServiceChange within 20 s it exits 1.
%% Usage: erl -noshell -pa DIR -run iq_mgc run PORT SCENARIO [TRANSPORT [N]]
-module(iq_mgc).
-include_lib("megaco/include/megaco.hrl").
-include_lib("megaco/include/megaco_message_v3.hrl").
-export([run/1]).
-export([handle_connect/3, handle_disconnect/4, handle_syntax_error/4,
         handle_message_error/4, handle_trans_request/4, handle_trans_long_request/4,
         handle_trans_reply/5, handle_trans_ack/5, handle_unexpected_trans/4,
         handle_trans_request_abort/5, handle_segment_reply/6]).

run([PortS, Scenario]) ->
    run([PortS, Scenario, "udp"]);
run([PortS, Scenario, Transport]) ->
    run([PortS, Scenario, Transport, "1000"]);
run([PortS, Scenario, Transport, NS]) ->
    put(calls, list_to_integer(NS)),
    Port = list_to_integer(PortS),
    ok = megaco:start(),
    Mid = {ip4Address, #'IP4Address'{address = [127, 0, 0, 1], portNumber = Port}},
    ok = megaco:start_user(Mid, [{user_mod, ?MODULE}, {user_args, [self()]},
                                 {protocol_version, 3},
                                 {request_timer, #megaco_incr_timer{wait_for = 500, factor = 1,
                                                                    max_retries = 3}}]),
    RH0 = megaco:user_info(Mid, receive_handle),
    case Transport of
        "udp" ->
            RH = RH0#megaco_receive_handle{encoding_mod = megaco_compact_text_encoder,
                                           encoding_config = [], send_mod = megaco_udp},
            {ok, Sup} = megaco_udp:start_transport(),
            {ok, _SH, _Ctrl} = megaco_udp:open(Sup, [{port, Port}, {receive_handle, RH},
                                                    {udp_options, [{ip, {127, 0, 0, 1}}]}]);
        "tcp" ->
            RH = RH0#megaco_receive_handle{encoding_mod = megaco_compact_text_encoder,
                                           encoding_config = [], send_mod = megaco_tcp},
            {ok, Sup} = megaco_tcp:start_transport(),
            ok = megaco_tcp:listen(Sup, [{port, Port}, {receive_handle, RH}])
    end,
    io:format("READY~n"),
    {CH, Parm} = receive {sc, C, P} -> {C, P}
                 after 20000 -> io:format("FAIL register timeout~n"), halt(1)
                 end,
    scenario(Scenario, CH, Parm).

scenario("register", _CH, Parm) ->
    Prof = Parm#'ServiceChangeParm'.serviceChangeProfile,
    io:format("SC method=~w reason=~w version=~w profile=~s/~w~n",
              [Parm#'ServiceChangeParm'.serviceChangeMethod,
               Parm#'ServiceChangeParm'.serviceChangeReason,
               Parm#'ServiceChangeParm'.serviceChangeVersion,
               Prof#'ServiceChangeProfile'.profileName,
               Prof#'ServiceChangeProfile'.version]),
    timer:sleep(500),
    halt(0);
scenario("restarted", CH, Parm) ->
    io:format("SC method=~w~n", [Parm#'ServiceChangeParm'.serviceChangeMethod]),
    scenario("bulk", CH, Parm);
scenario("bulk", CH, _Parm) ->
    N = get(calls),
    timer:sleep(200),
    Ctxs = [begin
                {ok, Ctx, _, _} = add_realm(CH, ?megaco_choose_context_id, "access", quiet),
                {ok, Ctx, _, _} = add_realm(CH, Ctx, "core", quiet),
                Ctx
            end || _ <- lists:seq(1, N)],
    io:format("OK calls ~w contexts ~w~n", [N, length(lists:usort(Ctxs))]),
    Cmd = #'CommandRequest'{command = {subtractReq, #'SubtractRequest'{
              terminationID = [#megaco_term_id{contains_wildcards = true, id = [[$*]]}]}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = ?megaco_all_context_id,
                                           commandRequests = [Cmd]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = Replies, errorDescriptor = asn1_NOVALUE}]}} ->
            io:format("OK clearall ~w~n", [length(Replies)]),
            halt(0);
        Other -> io:format("FAIL clearall ~p~n", [Other]), halt(1)
    end;
scenario("calls", CH, _Parm) ->
    timer:sleep(200),
    Final = case add_t1(CH) of
                {ok, Ctx, T1} = A1 ->
                    A2 = add_t2(CH, Ctx),
                    M2 = case A2 of
                             {ok, T2} -> modify_t2(CH, Ctx, T2);
                             _ -> {fail}
                         end,
                    Rest = [add_rtp(CH), retransmit(CH), subtract(CH, Ctx, T1)],
                    S2 = case A2 of
                             {ok, T2b} -> [subtract(CH, Ctx, T2b)];
                             _ -> []
                         end,
                    [A1, A2, M2 | Rest] ++ S2;
                Other -> [Other]
            end,
    case lists:all(fun(R) -> element(1, R) =:= ok end, Final) of
        true -> halt(0);
        false -> halt(1)
    end;
%% The Iq packages gm, tman, ds and ipra: AuditCapabilities lists them; an Add and a Modify
%% carry every property and the replies echo the values in effect; AuditValue reports them
%% with the drop statistics; a bad value is refused naming the property; ROOT lists the
%% available realms.
scenario("packages", CH, _Parm) ->
    timer:sleep(200),
    Root = #megaco_term_id{id = ["root"]},
    Caps = #'CommandRequest'{command = {auditCapRequest, #'AuditRequest'{
               terminationID = Root,
               auditDescriptor = #'AuditDescriptor'{auditToken = [packagesToken]}}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = ?megaco_null_context_id,
                                           commandRequests = [Caps]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = [{auditCapReply, {auditResult,
                #'AuditResult'{terminationAuditResult = CapAudit}}}]}]}} ->
            Pkgs = [N || {packagesDescriptor, P} <- CapAudit,
                         #'PackagesItem'{packageName = N} <- P],
            io:format("PACKAGES ~s~n", [string:join(Pkgs, ",")]);
        OtherCaps -> io:format("FAIL caps ~p~n", [OtherCaps]), halt(1)
    end,
    Props = [{"gm/saf", "ON"}, {"gm/sam", "198.18.100.0/24"}, {"gm/spf", "ON"},
             {"gm/spr", "5000-5009"}, {"tman/pol", "ON"}, {"tman/sdr", "12500"},
             {"tman/mbs", "3000"}, {"tman/pdr", "25000"}, {"tman/dvt", "100000"},
             {"ds/dscp", "2E"}],
    {ok, Ctx, T1, AddAudit} = add_props(CH, ?megaco_choose_context_id, Props),
    io:format("ADD ~s~n", [echo(AddAudit)]),
    ModAudit = modify_props(CH, Ctx, T1, [{"ds/dscp", "1A"}, {"tman/sdr", "25000"}]),
    io:format("MODIFY ~s~n", [echo(ModAudit)]),
    AV = #'CommandRequest'{command = {auditValueRequest, #'AuditRequest'{
             terminationID = T1,
             auditDescriptor = #'AuditDescriptor'{auditToken = [mediaToken, statsToken]}}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx, commandRequests = [AV]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = [{auditValueReply, {auditResult,
                #'AuditResult'{terminationAuditResult = AvAudit}}}]}]}} ->
            Stats = lists:flatten([S || {statisticsDescriptor, S} <- AvAudit]),
            io:format("AUDIT ~s stats=~s~n",
                      [echo(AvAudit),
                       string:join([N || #'StatisticsParameter'{statName = N} <- Stats], ",")]);
        OtherAv -> io:format("FAIL audit ~p~n", [OtherAv]), halt(1)
    end,
    case catch add_props(CH, ?megaco_choose_context_id, [{"tman/pol", "ON"}, {"tman/sdr", "0"},
                                                        {"tman/mbs", "3000"}]) of
        {error, #'ErrorDescriptor'{errorCode = Code, errorText = Text}} ->
            io:format("REFUSED ~w ~s~n", [Code, Text]);
        OtherBad -> io:format("FAIL bad value accepted ~p~n", [OtherBad]), halt(1)
    end,
    RootAV = #'CommandRequest'{command = {auditValueRequest, #'AuditRequest'{
                 terminationID = Root,
                 auditDescriptor = #'AuditDescriptor'{auditToken = [mediaToken]}}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = ?megaco_null_context_id,
                                           commandRequests = [RootAV]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = [{auditValueReply, {auditResult,
                #'AuditResult'{terminationAuditResult = RootAudit}}}]}]}} ->
            Realms = [{N, V} || {mediaDescriptor, #'MediaDescriptor'{termStateDescr =
                                    #'TerminationStateDescriptor'{propertyParms = PPs}}} <- RootAudit,
                                #'PropertyParm'{name = N, value = V} <- PPs],
            io:format("ROOT ~p~n", [Realms]);
        OtherRoot -> io:format("FAIL root audit ~p~n", [OtherRoot]), halt(1)
    end,
    {ok} = subtract(CH, Ctx, T1),
    halt(0);
scenario("annexy", CH, Parm) ->
    annexy(CH, Parm, "IP4", "198.18.100.7");
scenario("annexy6", CH, Parm) ->
    annexy(CH, Parm, "IP6", "2001:db8:1:100::7");
scenario(Other, _CH, _Parm) ->
    io:format("FAIL unknown scenario ~s~n", [Other]), halt(1).

%% The seed's flow with UE-X at UeX, of address type Family (T1's Local asks for it).
annexy(CH, _Parm, Family, UeX) ->
    timer:sleep(200),
    {ok, Ctx, T1, {Ip1, Port1}} = add_realm(CH, ?megaco_choose_context_id, "access", loud, Family),
    {ok, Ctx, T2, _} = add_realm(CH, Ctx, "core"),
    ok = modify_remote(CH, Ctx, T2, "IP4", "198.18.200.50", "2855", "passive", 103, "tcpc/estfail"),
    ok = modify_remote(CH, Ctx, T1, Family, UeX, "9", "active", 104, "tcpc/est"),
    io:format("T1 ~s ~s~n", [Ip1, Port1]),
    receive
        {notify, 104, Events} ->
            case lists:member("tcpc/est", Events) of
                true -> io:format("OK notify tcpc/est~n");
                false -> io:format("FAIL notify ~p~n", [Events]), halt(1)
            end
    after 30000 -> io:format("FAIL no notify~n"), halt(1)
    end,
    "subtract" ++ _ = io:get_line(""),
    Audit = #'AuditDescriptor'{auditToken = [statsToken]},
    Cmds = [#'CommandRequest'{command = {subtractReq,
                #'SubtractRequest'{terminationID = [T], auditDescriptor = Audit}}} || T <- [T1, T2]],
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx, commandRequests = Cmds}], []) of
        {3, {ok, [#'ActionReply'{commandReply = Replies}]}} ->
            [print_stats(R) || R <- Replies],
            halt(0);
        Other -> io:format("FAIL subtract ~p~n", [Other]), halt(1)
    end.


print_stats({subtractReply, #'AmmsReply'{terminationID = [Tid], terminationAudit = Audit}}) ->
    Stats = lists:flatten([S || {statisticsDescriptor, S} <- Audit]),
    Val = fun(Name) ->
                  case [V || #'StatisticsParameter'{statName = N, statValue = [V]} <- Stats, N =:= Name] of
                      [V] -> V;
                      _ -> "?"
                  end
          end,
    io:format("STATS ~s os=~s or=~s chkr=~s chks=~s r2xxr=~s r2xxs=~s~n",
              [string:join(Tid#megaco_term_id.id, "/"), Val("nt/os"), Val("nt/or"),
               Val("msrpst/chkr"), Val("msrpst/chks"), Val("msrpst/r2xxr"), Val("msrpst/r2xxs")]).

add_realm(CH, Ctx0, Realm) ->
    add_realm(CH, Ctx0, Realm, loud).

add_realm(CH, Ctx0, Realm, Say) ->
    add_realm(CH, Ctx0, Realm, Say, "IP4").

add_realm(CH, Ctx0, Realm, Say, Family) ->
    Cmd = #'CommandRequest'{command = {addReq, #'AmmRequest'{
              terminationID = [#megaco_term_id{contains_wildcards = true, id = [[$$]]}],
              descriptors = [{mediaDescriptor,
                              media(sdp([{"v", "0"}, {"c", "IN " ++ Family ++ " $"},
                                         {"m", "message $ TCP/MSRP *"}]), Realm)}]}}},
    {3, {ok, [#'ActionReply'{contextId = Ctx,
                             commandReply = [{addReply, #'AmmsReply'{terminationID = [Tid],
                                                                     terminationAudit = Audit}}]}]}} =
        megaco:call(CH, [#'ActionRequest'{contextId = Ctx0, commandRequests = [Cmd]}], []),
    [{mediaDescriptor, #'MediaDescriptor'{streams = {multiStream, [SD]}}}] = Audit,
    #'StreamDescriptor'{streamParms = #'StreamParms'{localDescriptor =
        #'LocalRemoteDescriptor'{propGrps = [PG]}}} = SD,
    [C] = [V || #'PropertyParm'{name = "c", value = [V]} <- PG],
    [M] = [V || #'PropertyParm'{name = "m", value = [V]} <- PG],
    Ip = lists:last(string:tokens(C, " ")),
    Port = lists:nth(2, string:tokens(M, " ")),
    case Say of
        loud -> io:format("OK add ~s ~s:~s~n", [string:join(Tid#megaco_term_id.id, "/"), Ip, Port]);
        quiet -> ok
    end,
    {ok, Ctx, Tid, {Ip, Port}}.

modify_remote(CH, Ctx, Tid, Family, Ip, Port, Setup, Rid, Event) ->
    Remote = sdp([{"v", "0"}, {"c", "IN " ++ Family ++ " " ++ Ip}, {"m", "message " ++ Port ++ " TCP/MSRP *"},
                  {"a", "setup:" ++ Setup}]),
    LC = #'LocalControlDescriptor'{streamMode = sendRecv, propertyParms = []},
    SP = #'StreamParms'{localControlDescriptor = LC,
                        remoteDescriptor = #'LocalRemoteDescriptor'{propGrps = [Remote]}},
    Media = #'MediaDescriptor'{streams = {multiStream,
                 [#'StreamDescriptor'{streamID = 1, streamParms = SP}]}},
    Events = #'EventsDescriptor'{requestID = Rid,
                                 eventList = [#'RequestedEvent'{pkgdName = Event}]},
    Cmd = #'CommandRequest'{command = {modReq, #'AmmRequest'{
              terminationID = [Tid],
              descriptors = [{mediaDescriptor, Media}, {eventsDescriptor, Events}]}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx, commandRequests = [Cmd]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = [{modReply, _}]}]}} ->
            io:format("OK modify ~s~n", [string:join(Tid#megaco_term_id.id, "/")]), ok;
        Other -> io:format("FAIL modify ~p~n", [Other]), halt(1)
    end.

%% The gm, tman and ds properties of a reply's LocalControl, as NAME=VALUE.
echo(Audit) ->
    PPs = [PP || {mediaDescriptor, #'MediaDescriptor'{streams = {multiStream, SDs}}} <- Audit,
                 #'StreamDescriptor'{streamParms = #'StreamParms'{localControlDescriptor =
                     #'LocalControlDescriptor'{propertyParms = PP}}} <- SDs],
    string:join([N ++ "=" ++ string:join(V, "|")
                 || #'PropertyParm'{name = N, value = V} <- lists:flatten(PPs)], " ").

add_props(CH, Ctx0, Props) ->
    LC = #'LocalControlDescriptor'{streamMode = inactive,
            propertyParms = [#'PropertyParm'{name = "ipdc/realm", value = ["access"]} |
                             [#'PropertyParm'{name = N, value = [V]} || {N, V} <- Props]]},
    SP = #'StreamParms'{localControlDescriptor = LC,
            localDescriptor = #'LocalRemoteDescriptor'{propGrps = [sdp([{"v", "0"},
                {"c", "IN IP4 $"}, {"m", "message $ TCP/MSRP *"}])]}},
    Media = #'MediaDescriptor'{streams = {multiStream,
                [#'StreamDescriptor'{streamID = 1, streamParms = SP}]}},
    Cmd = #'CommandRequest'{command = {addReq, #'AmmRequest'{
              terminationID = [#megaco_term_id{contains_wildcards = true, id = [[$$]]}],
              descriptors = [{mediaDescriptor, Media}]}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx0, commandRequests = [Cmd]}], []) of
        {3, {ok, [#'ActionReply'{contextId = Ctx, errorDescriptor = asn1_NOVALUE,
                                 commandReply = [{addReply, #'AmmsReply'{terminationID = [Tid],
                                                     terminationAudit = Audit}}]}]}} ->
            {ok, Ctx, Tid, Audit};
        {3, {ok, [#'ActionReply'{errorDescriptor = #'ErrorDescriptor'{} = E}]}} ->
            {error, E};
        Other -> {fail, Other}
    end.

modify_props(CH, Ctx, Tid, Props) ->
    LC = #'LocalControlDescriptor'{propertyParms =
            [#'PropertyParm'{name = N, value = [V]} || {N, V} <- Props]},
    SP = #'StreamParms'{localControlDescriptor = LC},
    Media = #'MediaDescriptor'{streams = {multiStream,
                [#'StreamDescriptor'{streamID = 1, streamParms = SP}]}},
    Cmd = #'CommandRequest'{command = {modReq, #'AmmRequest'{
              terminationID = [Tid], descriptors = [{mediaDescriptor, Media}]}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx, commandRequests = [Cmd]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = [{modReply, #'AmmsReply'{
                                                    terminationAudit = Audit}}]}]}} -> Audit;
        Other -> io:format("FAIL modify props ~p~n", [Other]), halt(1)
    end.

sdp(Lines) -> [#'PropertyParm'{name = N, value = [V]} || {N, V} <- Lines].

media(Sdp, Realm) ->
    LC = #'LocalControlDescriptor'{streamMode = inactive,
                                   propertyParms = [#'PropertyParm'{name = "ipdc/realm",
                                                                    value = [Realm]}]},
    SP = #'StreamParms'{localControlDescriptor = LC,
                        localDescriptor = #'LocalRemoteDescriptor'{propGrps = [Sdp]}},
    #'MediaDescriptor'{streams = {multiStream, [#'StreamDescriptor'{streamID = 1,
                                                                    streamParms = SP}]}}.

add(CH, Sdp) ->
    Cmd = #'CommandRequest'{command = {addReq, #'AmmRequest'{
              terminationID = [#megaco_term_id{contains_wildcards = true, id = [[$$]]}],
              descriptors = [{mediaDescriptor, media(Sdp, "access")}]}}},
    megaco:call(CH, [#'ActionRequest'{contextId = ?megaco_choose_context_id,
                                      commandRequests = [Cmd]}], []).

add_t1(CH) ->
    case add(CH, sdp([{"v", "0"}, {"c", "IN IP4 $"}, {"m", "message $ TCP/MSRP *"}])) of
        {3, {ok, [#'ActionReply'{contextId = Ctx,
                                 commandReply = [{addReply, #'AmmsReply'{terminationID = [Tid],
                                                                         terminationAudit = Audit}}]}]}}
          when is_integer(Ctx) ->
            Text = lists:flatten(io_lib:format("~p", [Audit])),
            case {string:str(Text, "192.0.2.10"), string:str(Text, "$")} of
                {N, 0} when N > 0 ->
                    io:format("OK add ctx=~w tid=~s~n", [Ctx, string:join(Tid#megaco_term_id.id, "/")]),
                    {ok, Ctx, Tid};
                _ ->
                    io:format("FAIL add local not filled ~s~n", [Text]), {fail}
            end;
        Other -> io:format("FAIL add ~w~n", [Other]), {fail}
    end.

add_t2(CH, Ctx) ->
    Cmd = #'CommandRequest'{command = {addReq, #'AmmRequest'{
              terminationID = [#megaco_term_id{contains_wildcards = true, id = [[$$]]}],
              descriptors = [{mediaDescriptor,
                              media(sdp([{"v", "0"}, {"c", "IN IP4 $"},
                                         {"m", "message $ TCP/MSRP *"}]), "access")}]}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx, commandRequests = [Cmd]}], []) of
        {3, {ok, [#'ActionReply'{contextId = Ctx,
                                 commandReply = [{addReply, #'AmmsReply'{terminationID = [Tid]}}]}]}} ->
            io:format("OK add-t2 tid=~s~n", [string:join(Tid#megaco_term_id.id, "/")]),
            {ok, Tid};
        Other -> io:format("FAIL add-t2 ~w~n", [Other]), {fail}
    end.

modify_t2(CH, Ctx, Tid) ->
    Remote = sdp([{"v", "0"}, {"c", "IN IP4 203.0.113.50"}, {"m", "message 2855 TCP/MSRP *"},
                  {"a", "setup:passive"}]),
    LC = #'LocalControlDescriptor'{streamMode = sendRecv, propertyParms = []},
    SP = #'StreamParms'{localControlDescriptor = LC,
                        remoteDescriptor = #'LocalRemoteDescriptor'{propGrps = [Remote]}},
    Media = #'MediaDescriptor'{streams = {multiStream,
                 [#'StreamDescriptor'{streamID = 1, streamParms = SP}]}},
    Cmd = #'CommandRequest'{command = {modReq, #'AmmRequest'{
              terminationID = [Tid], descriptors = [{mediaDescriptor, Media}]}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx, commandRequests = [Cmd]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = [{modReply, #'AmmsReply'{terminationID = [Tid],
                                                                         terminationAudit = Audit}}]}]}} ->
            Text = lists:flatten(io_lib:format("~p", [Audit])),
            case string:str(Text, "setup:active") of
                N when N > 0 -> io:format("OK modify-t2 active~n"), {ok};
                _ -> io:format("FAIL modify-t2 no a=setup:active in ~s~n", [Text]), {fail}
            end;
        Other -> io:format("FAIL modify-t2 ~w~n", [Other]), {fail}
    end.

%% The same request twice with one transaction ID, from a plain UDP socket: the MG must
%% answer both with the identical bytes (its reply cache), executing it once.
retransmit(CH) ->
    {ip4Address, #'IP4Address'{portNumber = MgPort}} = megaco:conn_info(CH, remote_mid),
    {ok, S} = gen_udp:open(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    Msg = <<"!/3 [127.0.0.1]:9 T=777{C=${A=${M{ST=1{O{MO=IN,ipdc/realm=\"access\"},L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}">>,
    ok = gen_udp:send(S, {127, 0, 0, 1}, MgPort, Msg),
    R1 = gen_udp:recv(S, 0, 5000),
    ok = gen_udp:send(S, {127, 0, 0, 1}, MgPort, Msg),
    R2 = gen_udp:recv(S, 0, 5000),
    gen_udp:close(S),
    case {R1, R2} of
        {{ok, {_, _, B}}, {ok, {_, _, B}}} ->
            io:format("OK retransmit identical-reply bytes=~w~n", [byte_size(B)]), {ok};
        _ -> io:format("FAIL retransmit ~p ~p~n", [R1, R2]), {fail}
    end.

add_rtp(CH) ->
    case add(CH, sdp([{"v", "0"}, {"c", "IN IP4 $"}, {"m", "audio $ RTP/AVP 0"}])) of
        {3, {ok, [#'ActionReply'{errorDescriptor = #'ErrorDescriptor'{errorCode = 515}}]}} ->
            io:format("OK bad-media error=515~n"), {ok};
        Other -> io:format("FAIL bad-media ~w~n", [Other]), {fail}
    end.

subtract(CH, Ctx, Tid) ->
    Cmd = #'CommandRequest'{command = {subtractReq, #'SubtractRequest'{terminationID = [Tid]}}},
    case megaco:call(CH, [#'ActionRequest'{contextId = Ctx, commandRequests = [Cmd]}], []) of
        {3, {ok, [#'ActionReply'{commandReply = [{subtractReply, #'AmmsReply'{terminationID = [Tid]}}]}]}} ->
            io:format("OK subtract~n"), {ok};
        Other -> io:format("FAIL subtract ~w~n", [Other]), {fail}
    end.

handle_connect(_CH, _V, _Pid) -> ok.
handle_disconnect(_CH, _V, _R, _Pid) -> ok.
handle_syntax_error(_RH, _V, _E, _Pid) -> reply.
handle_message_error(_CH, _V, _E, _Pid) -> no_reply.
handle_trans_request(CH, _V,
                     [#'ActionRequest'{contextId = ?megaco_null_context_id,
                                       commandRequests = [#'CommandRequest'{command = {serviceChangeReq,
                                           #'ServiceChangeRequest'{terminationID = Tids,
                                                                   serviceChangeParms = P}}}]}],
                     Pid) ->
    Pid ! {sc, CH, P},
    Res = #'ServiceChangeResParm'{serviceChangeVersion = 3},
    {discard_ack, [#'ActionReply'{contextId = ?megaco_null_context_id,
                                  commandReply = [{serviceChangeReply,
                                      #'ServiceChangeReply'{terminationID = Tids,
                                          serviceChangeResult = {serviceChangeResParms, Res}}}]}]};
handle_trans_request(_CH, _V,
                     [#'ActionRequest'{contextId = Ctx,
                                       commandRequests = [#'CommandRequest'{command = {notifyReq,
                                           #'NotifyRequest'{terminationID = Tids,
                                               observedEventsDescriptor = #'ObservedEventsDescriptor'{
                                                   requestId = Rid, observedEventLst = Obs}}}}]}],
                     Pid) ->
    Pid ! {notify, Rid, [E#'ObservedEvent'.eventName || E <- Obs]},
    {discard_ack, [#'ActionReply'{contextId = Ctx,
                                  commandReply = [{notifyReply, #'NotifyReply'{terminationID = Tids}}]}]};
handle_trans_request(_CH, _V, _Actions, _Pid) ->
    {discard_ack, {error, #'ErrorDescriptor'{errorCode = ?megaco_not_implemented}}}.
handle_trans_long_request(_CH, _V, _Data, _Pid) -> ignore.
handle_trans_reply(_CH, _V, _R, _D, _Pid) -> ok.
handle_trans_ack(_CH, _V, _S, _D, _Pid) -> ok.
handle_unexpected_trans(_CH, _V, _T, _Pid) -> ok.
handle_trans_request_abort(_CH, _V, _T, _H, _Pid) -> ok.
handle_segment_reply(_CH, _V, _T, _S, _L, _Pid) -> ok.
